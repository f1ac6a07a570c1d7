//! Random `adjective_surname` names for services created without one, in the style dockerd
//! uses (`fervent_kirch`). The word lists are shoal's own.

use rand::seq::IndexedRandom;

const ADJECTIVES: &[&str] = &[
    "agile", "amber", "ardent", "bold", "brave", "bright", "brisk", "calm", "candid", "cheerful",
    "clever", "cosmic", "crisp", "curious", "daring", "deft", "eager", "earnest", "elated",
    "elegant", "fearless", "fervent", "fluent", "focused", "frosty", "gallant", "gentle", "glad",
    "golden", "graceful", "hardy", "hopeful", "humble", "jolly", "keen", "kind", "lively", "lucid",
    "merry", "mellow", "mighty", "modest", "nimble", "noble", "patient", "placid", "plucky",
    "proud", "quiet", "quirky", "radiant", "rapid", "resolute", "serene", "sharp", "sincere",
    "snappy", "spry", "steady", "sunny", "swift", "tender", "tidy", "upbeat", "vivid", "warm",
    "witty", "zealous",
];

const SURNAMES: &[&str] = &[
    "agnesi",
    "archimedes",
    "babbage",
    "bardeen",
    "bell",
    "bohr",
    "boole",
    "cannon",
    "carson",
    "cerf",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hertz",
    "hodgkin",
    "hopper",
    "hypatia",
    "johnson",
    "joliot",
    "kepler",
    "kirch",
    "knuth",
    "lamarr",
    "lamport",
    "leakey",
    "liskov",
    "lovelace",
    "maxwell",
    "meitner",
    "mendel",
    "morse",
    "newton",
    "nobel",
    "noether",
    "pascal",
    "pasteur",
    "planck",
    "ritchie",
    "rubin",
    "sagan",
    "shannon",
    "somerville",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "volta",
    "wilson",
    "wozniak",
    "wright",
    "yalow",
];

/// A random name such as `fervent_kirch`; valid as a DNS name component.
pub fn random_name() -> String {
    let mut rng = rand::rng();
    let adjective = ADJECTIVES.choose(&mut rng).copied().unwrap_or("brave");
    let surname = SURNAMES.choose(&mut rng).copied().unwrap_or("turing");
    format!("{adjective}_{surname}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_two_lowercase_words() {
        let n = random_name();
        let (a, b) = n.split_once('_').unwrap();
        assert!(ADJECTIVES.contains(&a) && SURNAMES.contains(&b));
    }
}
