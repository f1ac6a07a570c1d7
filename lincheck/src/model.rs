//! The sequential specification a history is checked against.

use std::fmt::Debug;
use std::hash::Hash;

use crate::history::Operation;

/// A sequential specification: the behaviour of one object when operations run one at a time.
///
/// # Contract
///
/// * [`Model::step`] is a pure function of its arguments. The checker memoizes on
///   `(set of linearized operations, state)`, so two equal states must behave identically from
///   then on; a state that hides information (a counter outside the state, interior mutability)
///   makes the checker wrong, not just slow.
/// * `output` is `None` for an operation whose outcome is unknown. `step` then returns the state
///   the operation leaves behind *if it takes effect at that point*; the checker itself covers the
///   case where it never takes effect, by never linearizing it. Returning `None` for an unknown
///   outcome means "this operation cannot take effect in this state".
/// * A model that cannot name one successor state (an unknown outcome that may go either way in a
///   state that is itself uncertain) should make its state a set of possibilities, as
///   [`crate::models::versioned::VersionedRegister`] does.
/// * [`Model::partition`] must only separate operations that cannot affect each other's outcomes
///   (P-compositionality): a history is linearizable exactly when every partition is.
pub trait Model {
    /// The object's state between operations. Hashed and compared by the checker's cache.
    type State: Clone + Eq + Hash + Debug;
    /// What a client asks for. Compared and hashed so that the checker can treat unknown-outcome
    /// operations with equal inputs as interchangeable.
    type Input: Debug + Eq + Hash;
    /// What a client is told.
    type Output: Debug;

    /// The state of every partition before the first operation.
    fn init(&self) -> Self::State;

    /// Applies `input` to `state`, returning the new state when `output` is a possible answer
    /// (`None` output: the outcome is unknown, any answer goes), or `None` when it is not.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// The partition an operation belongs to; partitions are checked independently. The default
    /// is the operation's key, which is right for any model of independent per-key objects. A
    /// model whose operations span keys (multi-key transactions) returns one constant instead.
    fn partition(&self, op: &Operation<Self::Input, Self::Output>) -> String {
        op.key.clone()
    }

    /// One operation for a failure report, e.g. `cas("a" -> "b") -> failed`. `output` is `None`
    /// when the outcome is unknown.
    fn describe_operation(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        match output {
            Some(output) => format!("{input:?} -> {output:?}"),
            None => format!("{input:?} -> ?"),
        }
    }

    /// One state for a failure report.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}
