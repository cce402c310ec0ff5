//! Wake-ups from other processes: a change stream on the jobs wakes idle workers when
//! another process enqueues or a job becomes `pending` again, and aborts a local run
//! whose job another process cancelled. Polling every `poll_interval` is the fallback,
//! always on. (A local enqueue rings the local worker's doorbell directly.)

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::doorbell::Doorbells;
use super::running::Running;
use crate::store::{Change, Store};

/// How idle workers learn about new jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NotifyMode {
    /// The queue is not started.
    Off = 0,
    /// Local wake-ups plus polling every `poll_interval`.
    Polling = 1,
    /// Local wake-ups plus a change stream, with polling as a safety net.
    ChangeStream = 2,
}

impl NotifyMode {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => NotifyMode::Polling,
            2 => NotifyMode::ChangeStream,
            _ => NotifyMode::Off,
        }
    }

    /// `"off"`, `"polling"` or `"change-stream"`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyMode::Off => "off",
            NotifyMode::Polling => "polling",
            NotifyMode::ChangeStream => "change-stream",
        }
    }
}

/// The current [`NotifyMode`], shared by the services that change it.
#[derive(Default)]
pub(crate) struct ModeCell(AtomicU8);

impl ModeCell {
    pub(crate) fn get(&self) -> NotifyMode {
        NotifyMode::from_u8(self.0.load(Ordering::Relaxed))
    }

    pub(crate) fn set(&self, mode: NotifyMode) {
        self.0.store(mode as u8, Ordering::Relaxed);
    }
}

const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

pub(crate) struct Notifier {
    pub(crate) store: Arc<Store>,
    pub(crate) doorbells: Arc<Doorbells>,
    pub(crate) running: Arc<Running>,
    pub(crate) mode: Arc<ModeCell>,
}

impl Notifier {
    pub(crate) async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut retry_delay = Duration::from_secs(1);
        loop {
            let opened = tokio::select! {
                _ = stop.cancelled() => return,
                opened = self.store.watch_changes() => opened,
            };
            match opened {
                Ok(stream) => {
                    let mut stream = std::pin::pin!(stream);
                    self.mode.set(NotifyMode::ChangeStream);
                    retry_delay = Duration::from_secs(1);
                    loop {
                        let change = tokio::select! {
                            _ = stop.cancelled() => return,
                            change = stream.next() => change,
                        };
                        match change {
                            Some(Ok(change)) => self.dispatch(change),
                            Some(Err(err)) => {
                                tracing::debug!(%err, "change stream ended; polling until it reopens");
                                break;
                            }
                            None => break,
                        }
                    }
                }
                Err(err) => tracing::debug!(%err, "cannot open a change stream; polling"),
            }
            self.mode.set(NotifyMode::Polling);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(retry_delay) => {}
            }
            retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
        }
    }

    fn dispatch(&self, change: Change) {
        match change {
            Change::Cancelled(id) => {
                // Events can lag: the job may have been retried and claimed here again
                // since. Abort only while it is still cancelled.
                let (store, running) = (self.store.clone(), self.running.clone());
                tokio::spawn(async move {
                    if matches!(store.is_cancelled(id).await, Ok(true)) {
                        running.cancel(id);
                    }
                });
            }
            Change::Claimable { name, at, grouped } => match (name, at) {
                (Some(name), None) if grouped => self.doorbells.ring_for_group(&name),
                (Some(name), Some(at)) if grouped => self.doorbells.ring_group_at(&name, at),
                (Some(name), Some(at)) => self.doorbells.ring_at(&name, at),
                (Some(name), None) => self.doorbells.ring(&name),
                (None, Some(at)) => self.doorbells.ring_all_at(at),
                (None, None) => self.doorbells.ring_all(),
            },
        }
    }
}
