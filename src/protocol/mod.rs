//! The protocol's decisions as plain types and functions: no actors, no I/O,
//! no clocks of their own (time is passed in). Everything here is tested
//! without a runtime; the actors in `crate::actors` call it.

pub mod amplification;
pub mod awareness;
pub mod backoff;
pub mod checks;
pub mod crypto;
pub mod formed;
pub mod member;
pub mod peers;
pub mod probe_order;
pub mod reconnect;
pub mod replay;
pub mod rumor_queue;
pub mod seeds;
pub mod services;
pub mod suspicion;
pub mod sync_plan;
pub mod timers;
pub mod view;
pub mod wire;

pub use member::{Member, MemberState, NodeId};
pub use view::Table;
