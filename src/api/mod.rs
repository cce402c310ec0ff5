//! The public API: the [`Monque`] handle and the services it forwards to (enqueue,
//! management, schedules). It builds on the runtime services and the storage layer;
//! the Node binding (`node/`) builds on it.

mod enqueue;
mod management;
mod monque;
mod schedules;

pub use monque::Monque;
