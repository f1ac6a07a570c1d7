//! Versioned secrets and configs. Their data is immutable (as in Swarm), so when a stack's file
//! changes it, apply creates a new object — a revision — instead of failing as `docker stack
//! deploy` does: the first revision keeps the plain name (`<stack>_<name>`, as `docker stack
//! deploy` names it), later ones are `<stack>_<name>.v<n>`. Services refer to the new revision,
//! which rolls their tasks like any other spec change; the old revision is retired and removed
//! by the stack controller once no task and no retained stack revision uses it.

use serde::Serialize;
use shoal_store::model::StoreObject;
use shoal_store::model::{Config, ConfigSpec, Labels, Meta, Secret, SecretSpec};

/// What apply needs to know about secrets and configs alike.
pub trait Versioned: StoreObject {
    /// The spec type.
    type Spec: Clone + Serialize;
    /// The stored spec.
    fn spec(&self) -> &Self::Spec;
    /// The stored spec, to change its labels.
    fn spec_mut(&mut self) -> &mut Self::Spec;
    /// A new object.
    fn build(id: String, spec: Self::Spec) -> Self;
    /// The spec's name.
    fn name_of(spec: &Self::Spec) -> &str;
    /// Renames a spec (a new revision's store name).
    fn rename(spec: &mut Self::Spec, name: String);
    /// The spec's labels.
    fn labels_mut(spec: &mut Self::Spec) -> &mut Labels;
    /// Whether two specs have the same content (data and drivers; labels may change in place).
    fn same_content(a: &Self::Spec, b: &Self::Spec) -> bool;
    /// The spec's data (for digests in plans; never shown).
    fn data(spec: &Self::Spec) -> &[u8];
}

impl Versioned for Secret {
    type Spec = SecretSpec;
    fn spec(&self) -> &SecretSpec {
        &self.spec
    }
    fn spec_mut(&mut self) -> &mut SecretSpec {
        &mut self.spec
    }
    fn build(id: String, spec: SecretSpec) -> Self {
        Secret {
            meta: Meta::with_id(id),
            spec,
        }
    }
    fn name_of(spec: &SecretSpec) -> &str {
        &spec.name
    }
    fn rename(spec: &mut SecretSpec, name: String) {
        spec.name = name;
    }
    fn labels_mut(spec: &mut SecretSpec) -> &mut Labels {
        &mut spec.labels
    }
    fn same_content(a: &SecretSpec, b: &SecretSpec) -> bool {
        a.data == b.data && a.driver == b.driver && a.templating == b.templating
    }
    fn data(spec: &SecretSpec) -> &[u8] {
        &spec.data
    }
}

impl Versioned for Config {
    type Spec = ConfigSpec;
    fn spec(&self) -> &ConfigSpec {
        &self.spec
    }
    fn spec_mut(&mut self) -> &mut ConfigSpec {
        &mut self.spec
    }
    fn build(id: String, spec: ConfigSpec) -> Self {
        Config {
            meta: Meta::with_id(id),
            spec,
        }
    }
    fn name_of(spec: &ConfigSpec) -> &str {
        &spec.name
    }
    fn rename(spec: &mut ConfigSpec, name: String) {
        spec.name = name;
    }
    fn labels_mut(spec: &mut ConfigSpec) -> &mut Labels {
        &mut spec.labels
    }
    fn same_content(a: &ConfigSpec, b: &ConfigSpec) -> bool {
        a.data == b.data && a.templating == b.templating
    }
    fn data(spec: &ConfigSpec) -> &[u8] {
        &spec.data
    }
}

/// The store name of revision `n` (n >= 2) of `name`.
pub fn revision_name(name: &str, n: u64) -> String {
    format!("{name}.v{n}")
}

/// The revision number a store name carries for `name` (1 for the plain name).
pub fn revision_of(name: &str, store_name: &str) -> Option<u64> {
    if store_name == name {
        return Some(1);
    }
    store_name
        .strip_prefix(name)?
        .strip_prefix(".v")?
        .parse()
        .ok()
}

/// A short digest of data for plans (`sha256:0123abcd`), so a change shows without the bytes.
pub fn digest(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(data);
    format!("sha256:{}", &hex::encode(d)[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_names_round_trip() {
        assert_eq!(revision_of("st_a", "st_a"), Some(1));
        assert_eq!(revision_of("st_a", &revision_name("st_a", 7)), Some(7));
        assert_eq!(revision_of("st_a", "st_ab"), None);
        assert_eq!(revision_of("st_a", "st_a.vx"), None);
    }
}
