//! Gossip: decentralized cluster membership, failure detection and service
//! discovery over UDP gossip. See ALGORITHM.md for the protocol and
//! ARCHITECTURE.md for how the code is laid out.

pub mod actors;
pub mod agent;
pub mod api;
pub mod config;
pub mod demo;
pub mod dns;
pub mod fuzzing;
pub mod messages;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod sim;
pub mod snapshot;
pub mod testkit;
pub mod transport;
