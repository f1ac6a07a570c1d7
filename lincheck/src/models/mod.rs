//! Ready-made models for the histories shoal's chaos suite records.

pub mod register;
pub mod versioned;

pub use register::{Register, RegisterInput, RegisterOutput};
pub use versioned::{VersionedInput, VersionedOutput, VersionedRegister};
