//! Calls a JS handler from the core and awaits its Promise. The TS wrapper never
//! rejects: it resolves with an envelope `{ ok, result?, snooze?, error?: { message, retryable, stack? } }`, so
//! error details survive the crossing. While a run is in flight its span cell is listed
//! in `RunSpans`, so the wrapper can name the run's OpenTelemetry span as soon as it
//! starts (`recordRunSpan`): a run that times out keeps it too. When the job's signal aborts (shutdown, job timeout
//! or cancellation),
//! JS is told through the event sink so `job.signal` aborts there too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use futures_util::future::BoxFuture;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use serde_json::json;

use super::{EventSink, JsHandlerFn};
use crate::handler::RunSpan;
use crate::{AbortReason, Handler, HandlerError, JobContext, Outcome};

/// The span cells of the runs in flight, by execution (`<jobId>:<claimId>`).
pub(super) type RunSpans = Arc<Mutex<HashMap<String, RunSpan>>>;

/// Lists a run's span cell for as long as its call lasts (dropped with the call's
/// future, also when a timed-out run is cancelled).
struct Listed {
    spans: RunSpans,
    execution: String,
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.spans
            .lock()
            .expect("spans lock")
            .remove(&self.execution);
    }
}

pub(super) struct JsHandler {
    tsfn: Arc<JsHandlerFn>,
    sink: Arc<RwLock<Option<EventSink>>>,
    spans: RunSpans,
}

impl JsHandler {
    pub(super) fn new(
        tsfn: JsHandlerFn,
        sink: Arc<RwLock<Option<EventSink>>>,
        spans: RunSpans,
    ) -> Self {
        JsHandler {
            tsfn: Arc::new(tsfn),
            sink,
            spans,
        }
    }
}

impl Handler for JsHandler {
    fn call(&self, ctx: JobContext) -> BoxFuture<'static, Outcome> {
        let tsfn = self.tsfn.clone();
        let sink = self.sink.clone();
        let spans = self.spans.clone();
        Box::pin(async move {
            // A batch claim gives its jobs one claim id: the pair names the execution.
            let execution = format!(
                "{}:{}",
                ctx.job.id.to_hex(),
                ctx.job.claim_id.map(|c| c.to_hex()).unwrap_or_default()
            );
            spans
                .lock()
                .expect("spans lock")
                .insert(execution.clone(), ctx.span.clone());
            let _listed = Listed {
                spans,
                execution: execution.clone(),
            };
            let promise = tsfn
                .call_async_catch(ctx.job.to_json().to_string())
                .await
                .map_err(|e| HandlerError::new(format!("handler threw: {}", e.reason)))?;
            tokio::pin!(promise);
            let mut told = false;
            let reply = loop {
                tokio::select! {
                    reply = &mut promise => break reply,
                    _ = ctx.signal.aborted(), if !told => {
                        told = true;
                        if let Some(sink) = sink.read().expect("sink lock").as_ref() {
                            let msg = json!({
                                "type": "internal:abort",
                                "execution": execution,
                                "reason": match ctx.signal.reason() {
                                    Some(AbortReason::Timeout) => "timeout",
                                    Some(AbortReason::Cancelled) => "cancelled",
                                    Some(AbortReason::LeaseLost) => "lease-lost",
                                    _ => "shutdown",
                                },
                            }).to_string();
                            sink.call(msg, ThreadsafeFunctionCallMode::NonBlocking);
                        }
                    }
                }
            };
            let reply =
                reply.map_err(|e| HandlerError::new(format!("handler failed: {}", e.reason)))?;
            parse_envelope(&reply)
        })
    }
}

fn parse_envelope(reply: &str) -> Outcome {
    let v: serde_json::Value = serde_json::from_str(reply)
        .map_err(|e| HandlerError::new(format!("bad handler envelope: {e}")))?;
    if v["ok"].as_bool() == Some(true) {
        return Ok(v.get("result").cloned().filter(|r| !r.is_null()));
    }
    if let Some(ms) = v["snooze"].as_u64() {
        return Err(HandlerError::snooze(std::time::Duration::from_millis(ms)));
    }
    let message = v["error"]["message"]
        .as_str()
        .unwrap_or("handler failed")
        .to_owned();
    let err = if v["error"]["retryable"].as_bool() == Some(false) {
        HandlerError::permanent(message)
    } else {
        HandlerError::new(message)
    };
    Err(match v["error"]["stack"].as_str() {
        Some(stack) => err.with_stack(stack),
        None => err,
    })
}
