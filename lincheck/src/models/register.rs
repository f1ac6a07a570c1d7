//! A read/write/compare-and-set register per key.
//!
//! Values are generic (`String` for labels written through shoal's API, integers in tests); a key
//! that was never written reads as `None`, and compare-and-set may expect `None`
//! (create-if-absent). There is no delete: a chaos workload that deletes should model it as a
//! write of a distinguished value.

use std::fmt::Debug;
use std::hash::Hash;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::model::Model;

/// What a client asks a register.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterInput<V> {
    /// Read the current value.
    Read,
    /// Overwrite the value unconditionally.
    Write(V),
    /// Set `new` if the current value is `expected` (`None`: the key is absent).
    Cas {
        /// The value the client believes is current.
        expected: Option<V>,
        /// The value to set when it is.
        new: V,
    },
}

/// What a register answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterOutput<V> {
    /// The value read (`None`: never written).
    Read(Option<V>),
    /// The write was applied.
    Written,
    /// The compare-and-set found the expected value and set the new one.
    CasOk,
    /// The compare-and-set found another value and changed nothing.
    CasFailed,
}

/// The register model. Its state is the current value, `None` before the first write.
#[derive(Clone, Copy, Debug, Default)]
pub struct Register<V>(PhantomData<fn() -> V>);

impl<V> Register<V> {
    /// A register model for values of type `V`.
    pub fn new() -> Self {
        Register(PhantomData)
    }
}

impl<V: Clone + Eq + Hash + Debug> Model for Register<V> {
    type State = Option<V>;
    type Input = RegisterInput<V>;
    type Output = RegisterOutput<V>;

    fn init(&self) -> Option<V> {
        None
    }

    fn step(
        &self,
        state: &Option<V>,
        input: &RegisterInput<V>,
        output: Option<&RegisterOutput<V>>,
    ) -> Option<Option<V>> {
        use RegisterInput as I;
        use RegisterOutput as O;
        match (input, output) {
            (I::Read, None) => Some(state.clone()),
            (I::Read, Some(O::Read(seen))) => (seen == state).then(|| state.clone()),
            (I::Write(v), None | Some(O::Written)) => Some(Some(v.clone())),
            (I::Cas { expected, new }, output) => {
                let matches = expected == state;
                match output {
                    // Unknown outcome: if it took effect here, the comparison decided how.
                    None if matches => Some(Some(new.clone())),
                    None => Some(state.clone()),
                    Some(O::CasOk) if matches => Some(Some(new.clone())),
                    Some(O::CasFailed) if !matches => Some(state.clone()),
                    Some(_) => None,
                }
            }
            // An answer of the wrong kind (a read answered "written") is never possible.
            (I::Read | I::Write(_), Some(_)) => None,
        }
    }

    fn describe_operation(
        &self,
        input: &RegisterInput<V>,
        output: Option<&RegisterOutput<V>>,
    ) -> String {
        let call = match input {
            RegisterInput::Read => "read".to_string(),
            RegisterInput::Write(v) => format!("write({v:?})"),
            RegisterInput::Cas { expected, new } => format!("cas({expected:?} -> {new:?})"),
        };
        let answer = match output {
            None => "? (outcome unknown)".to_string(),
            Some(RegisterOutput::Read(v)) => format!("{v:?}"),
            Some(RegisterOutput::Written) => "ok".to_string(),
            Some(RegisterOutput::CasOk) => "ok".to_string(),
            Some(RegisterOutput::CasFailed) => "failed".to_string(),
        };
        format!("{call} -> {answer}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Register<u8>;

    #[test]
    fn cas_succeeds_only_on_the_expected_value() {
        let r = R::new();
        let cas = RegisterInput::Cas {
            expected: Some(1),
            new: 2,
        };
        assert_eq!(
            r.step(&Some(1), &cas, Some(&RegisterOutput::CasOk)),
            Some(Some(2))
        );
        assert_eq!(r.step(&Some(3), &cas, Some(&RegisterOutput::CasOk)), None);
        assert_eq!(
            r.step(&Some(3), &cas, Some(&RegisterOutput::CasFailed)),
            Some(Some(3))
        );
        assert_eq!(
            r.step(&Some(1), &cas, Some(&RegisterOutput::CasFailed)),
            None
        );
    }

    #[test]
    fn unknown_outcomes_take_effect_as_the_state_decides() {
        let r = R::new();
        let cas = RegisterInput::Cas {
            expected: None,
            new: 2,
        };
        assert_eq!(r.step(&None, &cas, None), Some(Some(2)));
        assert_eq!(r.step(&Some(1), &cas, None), Some(Some(1)));
        assert_eq!(
            r.step(&Some(1), &RegisterInput::Write(4), None),
            Some(Some(4))
        );
    }

    #[test]
    fn answers_of_the_wrong_kind_are_refused() {
        let r = R::new();
        assert_eq!(
            r.step(&None, &RegisterInput::Read, Some(&RegisterOutput::Written)),
            None
        );
        assert_eq!(
            r.step(
                &None,
                &RegisterInput::Write(1),
                Some(&RegisterOutput::Read(None))
            ),
            None
        );
    }
}
