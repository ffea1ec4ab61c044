//! Gossip: decentralized cluster membership, failure detection and service
//! discovery over UDP gossip. See ALGORITHM.md for the protocol and
//! ARCHITECTURE.md for how the code is laid out.

pub mod actors;
pub mod agent;
pub mod api;
pub mod check_io;
pub mod config;
pub mod demo;
pub mod dns;
pub mod fuzzing;
pub mod identity;
pub mod keyring_file;
pub mod messages;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod seeds;
pub mod sim;
pub mod snapshot;
pub mod suggest;
pub mod testkit;
pub mod transport;

/// `gossip --version`: the crate version and the commit it was built from
/// (`build.rs` reads it from git, or from `GOSSIP_COMMIT` where there is no
/// `.git`, as in the Docker build).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GOSSIP_COMMIT"),
    ")"
);
