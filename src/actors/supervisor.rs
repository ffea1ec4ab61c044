//! Supervision: every actor of a node runs under [`supervise`], and every
//! handler body runs inside [`guard`].
//!
//! actix restarts a supervised actor only when the actor stops itself; a panic
//! would instead drop the actor's task and close its mailbox for good. So
//! `guard` catches the panic, logs it and stops the actor, and `supervise`
//! restarts it: the actor value (and so its state) is kept, its timers are
//! cleared, `Supervised::restarting` resets what must not survive, and
//! `started` runs again to set the timers up anew. The actor's address never
//! changes. What an actor knows of the member table it does not keep from
//! messages: it reads it from the published snapshot (`snapshot.rs`), and
//! `started` catches up with the newest one, so a restart loses no change
//! to the table, however many were published meanwhile. What a panic can
//! still lose is the message being handled and transient evidence (a probe
//! in flight, a confirmation), which the protocol repeats anyway.

use actix::dev::ContextFut;
use actix::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::metrics::Metrics;

/// Runs `act` in the pre-made context `ctx` (whose address may already have
/// been handed out) and restarts it whenever it stops itself.
pub fn supervise<A>(ctx: Context<A>, act: A, metrics: Arc<Metrics>) -> Addr<A>
where
    A: Actor<Context = Context<A>> + Supervised + Unpin,
{
    let addr = ctx.address();
    let fut: ContextFut<A, Context<A>> = ctx.into_future(act);
    actix_rt::spawn(async move {
        let mut fut = fut;
        loop {
            (&mut fut).await;
            if !fut.restart() {
                break;
            }
            Metrics::inc(&metrics.actor_restarts);
            log::warn!("supervisor: restarted {}", short_name::<A>());
        }
    });
    addr
}

/// Runs a handler body; on panic logs it, stops the actor (so the supervisor
/// restarts it) and returns None.
pub fn guard<A, R>(ctx: &mut Context<A>, f: impl FnOnce(&mut Context<A>) -> R) -> Option<R>
where
    A: Actor<Context = Context<A>>,
{
    match catch_unwind(AssertUnwindSafe(|| f(ctx))) {
        Ok(r) => Some(r),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            log::error!("{} panicked: {what}; restarting it", short_name::<A>());
            ctx.stop();
            None
        }
    }
}

pub fn short_name<A>() -> &'static str {
    let full = std::any::type_name::<A>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Test hook: makes the receiving actor panic inside a guarded handler.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Crash;
