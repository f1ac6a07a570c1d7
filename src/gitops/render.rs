//! From a checked-out commit to the stacks it describes: the same compose loader and the same
//! request `shoal apply` builds on a client, with the commit's files in place of the client's.
//!
//! Differences from `shoal apply`, because there is no user shell on the leader: compose
//! variables take no value from an environment (a `${VAR:-default}` takes its default), a
//! file the compose file names must be inside the repository, and one whose name ends in `.age`
//! is decrypted with the source's age identities (see [`super::age`]).

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use shoal_store::model::GitSourceSpec;

use super::age::{decrypt, Identities};
use crate::cli::stack_input::COMPOSE_NAMES;
use crate::compose::{self, SourceFile};
use crate::stack::plan::Desired;
use crate::stack::source::{self, ApplyBody, FileBody};

/// One stack of a commit.
pub struct RenderedStack {
    /// The stack's name.
    pub name: String,
    /// Its directory in the repository.
    pub path: String,
    /// What to apply, or why the commit's files for it cannot be applied.
    pub desired: Result<Desired, String>,
}

/// The stacks of the commit checked out in `work_tree`; an error when the source's directory
/// is not in the commit (then nothing of the source is touched: a typo in `--path` or a
/// moved directory must not prune every stack).
pub fn render(
    work_tree: &Path,
    spec: &GitSourceSpec,
    commit: &str,
    ids: Option<&Identities>,
) -> Result<Vec<RenderedStack>, String> {
    let root = work_tree.join(&spec.path);
    let shown = if spec.path.is_empty() {
        "the repository's root".to_string()
    } else {
        format!("directory {}", spec.path)
    };
    if !root.is_dir() {
        return Err(format!("{shown} is not in the commit"));
    }
    if !spec.stack_per_dir {
        return Ok(vec![RenderedStack {
            name: spec.name.clone(),
            path: spec.path.clone(),
            desired: stack(work_tree, &spec.path, &spec.name, spec, commit, ids),
        }]);
    }
    let mut dirs: Vec<String> = std::fs::read_dir(&root)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .filter(|n| COMPOSE_NAMES.iter().any(|c| root.join(n).join(c).is_file()))
        .collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| {
            let path = if spec.path.is_empty() {
                dir.clone()
            } else {
                format!("{}/{dir}", spec.path)
            };
            RenderedStack {
                name: dir.clone(),
                desired: stack(work_tree, &path, &dir, spec, commit, ids),
                path,
            }
        })
        .collect())
}

/// The desired state of stack `name` from the compose file in `path`.
fn stack(
    work_tree: &Path,
    path: &str,
    name: &str,
    spec: &GitSourceSpec,
    commit: &str,
    ids: Option<&Identities>,
) -> Result<Desired, String> {
    let dir = work_tree.join(path);
    let file = COMPOSE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "no compose file in {} (looked for {})",
                if path.is_empty() { "." } else { path },
                COMPOSE_NAMES.join(", ")
            )
        })?;
    let shown_name = file
        .strip_prefix(work_tree)
        .unwrap_or(&file)
        .display()
        .to_string();
    let top = work_tree
        .canonicalize()
        .map_err(|e| format!("cannot read the checkout: {e}"))?;
    // A symbolic link in the repository must not make the leader read its own files.
    let real = file
        .canonicalize()
        .map_err(|e| format!("cannot read {shown_name}: {e}"))?;
    if !real.starts_with(&top) {
        return Err(format!(
            "{shown_name} is outside the repository (a symbolic link)"
        ));
    }
    let content =
        std::fs::read_to_string(&real).map_err(|e| format!("cannot read {shown_name}: {e}"))?;
    let files = vec![SourceFile {
        name: shown_name.clone(),
        content,
    }];
    let no_env = BTreeMap::new();
    let refs = compose::references(&files, &no_env).map_err(|e| e.to_string())?;
    let mut attachments = BTreeMap::new();
    for named in &refs.files {
        let full = dir.join(named);
        let real = full
            .canonicalize()
            .map_err(|e| format!("{named} (named by {shown_name}): {e}"))?;
        if !real.starts_with(&top) {
            return Err(format!(
                "{named} (named by {shown_name}) is outside the repository"
            ));
        }
        let mut bytes = std::fs::read(&real).map_err(|e| format!("cannot read {named}: {e}"))?;
        if named.ends_with(".age") {
            let Some(ids) = ids else {
                return Err(format!(
                    "{named} (named by {shown_name}) is age-encrypted and gitops source {} has no --age-identity-secret to decrypt it",
                    spec.name
                ));
            };
            bytes = decrypt(ids, &bytes).map_err(|e| {
                format!("cannot decrypt {named} (named by {shown_name}) with the identities in swarm secret {}: {e}", spec.age_identity_secret)
            })?;
        }
        attachments.insert(
            named.clone(),
            base64::engine::general_purpose::STANDARD.encode(&bytes),
        );
    }
    let body = ApplyBody {
        files: files
            .into_iter()
            .map(|f| FileBody {
                name: f.name,
                content: f.content,
            })
            .collect(),
        attachments,
        working_dir: dir.display().to_string(),
        prune: spec.prune,
        applied_by: format!("gitops/{}", spec.name),
        ..Default::default()
    };
    let mut desired = source::desired(name, &body).map_err(|e| e.to_string())?;
    desired.cause = format!("gitops {}", spec.name);
    desired.git_source = spec.name.clone();
    desired.git_commit = commit.to_string();
    Ok(desired)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(stack_per_dir: bool) -> GitSourceSpec {
        GitSourceSpec {
            name: "src".into(),
            stack_per_dir,
            ..Default::default()
        }
    }

    const COMPOSE: &str = "services:\n  app:\n    image: busybox\n    secrets: [pw]\nsecrets:\n  pw:\n    file: ./pw.txt\n";

    #[test]
    fn stacks_per_directory_with_their_files() {
        let tree = tempfile::tempdir().unwrap();
        for dir in ["a", "b"] {
            std::fs::create_dir(tree.path().join(dir)).unwrap();
            std::fs::write(tree.path().join(dir).join("compose.yaml"), COMPOSE).unwrap();
            std::fs::write(tree.path().join(dir).join("pw.txt"), dir).unwrap();
        }
        std::fs::create_dir(tree.path().join("docs")).unwrap();
        let stacks = render(tree.path(), &spec(true), "c0ffee", None).unwrap();
        let names: Vec<&str> = stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let d = stacks[1].desired.as_ref().unwrap();
        assert_eq!(d.git_commit, "c0ffee");
        assert_eq!(d.git_source, "src");
        assert_eq!(d.objects.secrets[0].data, b"b");
    }

    #[test]
    fn files_outside_the_repository_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("pw.txt"), "leader's file").unwrap();
        std::fs::write(outside.path().join("compose.yaml"), COMPOSE).unwrap();
        let tree = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("compose.yaml"),
            tree.path().join("compose.yaml"),
        )
        .unwrap();
        let stacks = render(tree.path(), &spec(false), "c", None).unwrap();
        let e = stacks[0].desired.as_ref().unwrap_err();
        assert!(e.contains("outside the repository"), "{e}");

        std::fs::remove_file(tree.path().join("compose.yaml")).unwrap();
        std::fs::write(tree.path().join("compose.yaml"), COMPOSE).unwrap();
        std::os::unix::fs::symlink(outside.path().join("pw.txt"), tree.path().join("pw.txt"))
            .unwrap();
        let stacks = render(tree.path(), &spec(false), "c", None).unwrap();
        let e = stacks[0].desired.as_ref().unwrap_err();
        assert!(e.contains("outside the repository"), "{e}");
    }

    #[test]
    fn a_missing_directory_fails_the_whole_commit() {
        let tree = tempfile::tempdir().unwrap();
        let mut s = spec(true);
        s.path = "stacks".into();
        let e = render(tree.path(), &s, "c", None).err().unwrap();
        assert!(e.contains("directory stacks is not in the commit"), "{e}");
    }
}
