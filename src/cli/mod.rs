//! Command implementations of the `portcullis` binary.

pub mod corpus;
pub mod keys;
pub mod proxy;
pub mod rules;
