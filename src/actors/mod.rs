//! One actor per concern; each file opens with what it owns, which messages it
//! takes and which it sends. The messages themselves are in `crate::messages`.

pub mod checks;
pub mod failure;
pub mod gossip;
pub mod leave;
pub mod membership;
pub mod registry;
pub mod rumor;
pub mod supervisor;
#[cfg(test)]
mod tests;
pub mod transport;
