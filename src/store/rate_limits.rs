//! Rate limits shared by every instance: at most `max` jobs of a name start per
//! `duration`. One document per name in `<collection>_rate_limits` counts the starts of
//! the current fixed window (`{ _id: name, windowStart, endsAt, count }`). Before a claim, a
//! worker takes permits from it with a guarded update (the window it read, room for
//! what it takes), and gives back those its claim did not use (runtime/worker.rs).
//! Windows that ended long ago are deleted by the retention sweep: a group limiter
//! keeps one per group, and tenants come and go.

use mongodb::bson::{doc, DateTime};

use super::Store;
use crate::error::{Error, Result};
use crate::options::RateLimit;

/// What a worker may do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Permits {
    /// Start up to `count` jobs; `window` names the window they were counted in.
    Granted { count: u32, window: DateTime },
    /// The window is full until then.
    WaitUntil(DateTime),
}

/// Guarded updates that lost a race are tried again this often before waiting a beat.
const ATTEMPTS: usize = 5;

impl Store {
    /// Takes up to `want` permits for `name` from the current window.
    pub(crate) async fn take_permits(
        &self,
        name: &str,
        limit: RateLimit,
        want: u32,
    ) -> Result<Permits> {
        let span = limit.duration.as_millis() as i64;
        let ends_after =
            |start: DateTime| DateTime::from_millis(start.timestamp_millis().saturating_add(span));
        for _ in 0..ATTEMPTS {
            let now = self.now();
            let current = self
                .rate_limits
                .find_one(doc! { "_id": name })
                .await
                .map_err(|e| self.db_err(e))?;
            let Some(current) = current else {
                let count = want.min(limit.max);
                let first = doc! { "_id": name, "windowStart": now, "endsAt": ends_after(now), "count": count as i64 };
                match self.rate_limits.insert_one(first).await {
                    Ok(_) => return Ok(Permits::Granted { count, window: now }),
                    Err(e) if Error::is_duplicate_key(&e) => continue, // another instance was first
                    Err(e) => return Err(self.db_err(e)),
                }
            };
            let window = current
                .get_datetime("windowStart")
                .copied()
                .unwrap_or(DateTime::MIN);
            let used = current
                .get_i64("count")
                .or_else(|_| current.get_i32("count").map(i64::from))
                .unwrap_or(0);
            let ends = ends_after(window);
            if ends <= now {
                // The window is over: start the next one, unless someone just did.
                let count = want.min(limit.max);
                let res = self
                    .rate_limits
                    .update_one(
                        doc! { "_id": name, "windowStart": window },
                        doc! { "$set": {
                            "windowStart": now,
                            "endsAt": ends_after(now),
                            "count": count as i64,
                        } },
                    )
                    .await
                    .map_err(|e| self.db_err(e))?;
                if res.matched_count == 1 {
                    return Ok(Permits::Granted { count, window: now });
                }
                continue;
            }
            let room = (limit.max as i64 - used).max(0);
            if room == 0 {
                return Ok(Permits::WaitUntil(ends));
            }
            let count = (want as i64).min(room);
            let res = self
                .rate_limits
                .update_one(
                    doc! { "_id": name, "windowStart": window, "count": { "$lte": limit.max as i64 - count } },
                    // Whoever counts in a window says how long it lasts for them: a
                    // longer limit deployed beside a shorter one keeps it from the prune.
                    doc! { "$inc": { "count": count }, "$max": { "endsAt": ends } },
                )
                .await
                .map_err(|e| self.db_err(e))?;
            if res.matched_count == 1 {
                return Ok(Permits::Granted {
                    count: count as u32,
                    window,
                });
            }
        }
        // Heavy contention: let the others go first.
        Ok(Permits::WaitUntil(DateTime::from_millis(
            self.now().timestamp_millis() + 10,
        )))
    }

    /// Deletes the windows that ended more than `ended_for` ago. A worker that read one
    /// finds its guarded update missing and starts the next window, as it would have.
    /// Windows written before `endsAt` existed are kept until their next window.
    pub(crate) async fn prune_ended_windows(&self, ended_for: std::time::Duration) -> Result<u64> {
        let cutoff = self.ago(ended_for);
        let res = self
            .rate_limits
            .delete_many(doc! { "endsAt": { "$lt": cutoff } })
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(res.deleted_count)
    }

    /// Gives back permits a claim did not use, if their window is still current.
    pub(crate) async fn return_permits(&self, name: &str, window: DateTime, unused: u32) {
        if unused == 0 {
            return;
        }
        let res = self
            .rate_limits
            .update_one(
                doc! { "_id": name, "windowStart": window, "count": { "$gte": unused as i64 } },
                doc! { "$inc": { "count": -(unused as i64) } },
            )
            .await;
        if let Err(err) = res {
            tracing::debug!(%err, name, "could not give back rate-limit permits; the window ends anyway");
        }
    }
}
