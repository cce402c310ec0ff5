//! The `tracing` span a run is traced as, with OpenTelemetry's messaging attributes: a
//! `process` of destination = the job name, message id = the job id, and the attempt.
//! With the `opentelemetry` feature (and a `tracing-opentelemetry` layer installed),
//! the span continues the trace of the code that enqueued the job: a child of its span,
//! or for a schedule's run a new trace linked to it, and linked to the job's previous
//! attempt. A failed run sets the span's status and adds an `exception` event.

use tracing::field::Empty;

use crate::handler::Outcome;
use crate::job::Job;

/// The span of one run of `job`.
pub(crate) fn run_span(job: &Job) -> tracing::Span {
    let span = tracing::info_span!(
        "monque.job",
        job.id = %job.id,
        job.name = %job.name,
        attempt = job.fail_count + 1,
        otel.name = %format_args!("process {}", job.name),
        otel.kind = "consumer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        messaging.system = "monque",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = %job.name,
        messaging.message.id = %job.id,
        // i64: OpenTelemetry has no unsigned attributes.
        monque.job.attempt = i64::from(job.fail_count) + 1,
    );
    #[cfg(feature = "opentelemetry")]
    otel::continue_trace(&span, job);
    span
}

/// The span of an enqueue (`operation` is `enqueue` or `schedule`) of jobs named `name`
/// (`None`: a batch of several names).
pub(crate) fn producer_span(
    operation: &'static str,
    name: Option<&str>,
    count: usize,
) -> tracing::Span {
    tracing::info_span!(
        "monque.enqueue",
        otel.name = %match name {
            Some(name) => format!("{operation} {name}"),
            None => operation.to_owned(),
        },
        otel.kind = "producer",
        messaging.system = "monque",
        messaging.operation.type = "send",
        messaging.operation.name = operation,
        messaging.destination.name = name,
        messaging.message.id = Empty,
        messaging.batch.message_count = (count > 1).then_some(count as i64),
    )
}

/// Marks the current run's span with how it ended: an error status and an `exception`
/// event when the handler failed (a snooze is not a failure).
pub(crate) fn record_outcome(outcome: &Outcome) {
    let Err(err) = outcome else { return };
    if err.snoozed_for().is_some() {
        return;
    }
    let span = tracing::Span::current();
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", err.message());
    #[cfg(feature = "opentelemetry")]
    otel::exception(&span, err);
}

/// The W3C traceparent of `span` as OpenTelemetry sees it; `None` without the
/// `opentelemetry` feature or when no OpenTelemetry layer records it.
pub(crate) fn traceparent_of(span: &tracing::Span) -> Option<String> {
    #[cfg(feature = "opentelemetry")]
    {
        otel::traceparent(span)
    }
    #[cfg(not(feature = "opentelemetry"))]
    {
        let _ = span;
        None
    }
}

/// The trace context to store on a job enqueued inside `span`.
pub(crate) fn trace_context_of(span: &tracing::Span) -> Option<crate::trace_context::TraceContext> {
    #[cfg(feature = "opentelemetry")]
    {
        otel::trace_context(span)
    }
    #[cfg(not(feature = "opentelemetry"))]
    {
        let _ = span;
        None
    }
}

#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry::{Context, KeyValue};
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use crate::handler::HandlerError;
    use crate::job::Job;
    use crate::trace_context::{is_traceparent, TraceContext};

    /// A remote span context from a W3C traceparent (and tracestate).
    fn remote(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
        if !is_traceparent(traceparent) {
            return None;
        }
        let trace_id = TraceId::from_hex(&traceparent[3..35]).ok()?;
        let span_id = SpanId::from_hex(&traceparent[36..52]).ok()?;
        let flags = u8::from_str_radix(&traceparent[53..55], 16).ok()?;
        let state = tracestate
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default();
        Some(SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::new(flags),
            true,
            state,
        ))
    }

    pub(super) fn continue_trace(span: &tracing::Span, job: &Job) {
        if let Some(tc) = &job.trace_context {
            if let Some(parent) = remote(tc.traceparent(), tc.tracestate()) {
                if job.repeat.is_some() {
                    span.add_link_with_attributes(
                        parent,
                        vec![KeyValue::new("monque.link", "schedule")],
                    );
                } else {
                    let _ = span.set_parent(Context::new().with_remote_span_context(parent));
                }
            }
        }
        if let Some(previous) = job.previous_attempt_span().and_then(|p| remote(p, None)) {
            span.add_link_with_attributes(
                previous,
                vec![KeyValue::new("monque.link", "previous-attempt")],
            );
        }
    }

    pub(super) fn exception(span: &tracing::Span, err: &HandlerError) {
        let mut attributes = vec![
            KeyValue::new(
                "exception.type",
                if err.is_retryable() {
                    "HandlerError"
                } else {
                    "PermanentError"
                },
            ),
            KeyValue::new("exception.message", err.message().to_owned()),
        ];
        if let Some(stack) = err.stack() {
            attributes.push(KeyValue::new("exception.stacktrace", stack.to_owned()));
        }
        span.add_event("exception", attributes);
        span.set_status(Status::error(err.message().to_owned()));
    }

    fn span_context(span: &tracing::Span) -> Option<SpanContext> {
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(sc)
    }

    fn traceparent_of(sc: &SpanContext) -> String {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    }

    pub(super) fn traceparent(span: &tracing::Span) -> Option<String> {
        span_context(span).map(|sc| traceparent_of(&sc))
    }

    pub(super) fn trace_context(span: &tracing::Span) -> Option<TraceContext> {
        let sc = span_context(span)?;
        let state = sc.trace_state().header();
        let parent = traceparent_of(&sc);
        // A tracestate too long to keep is dropped, the trace still continues.
        TraceContext::new(parent.clone(), Some(state))
            .or_else(|_| TraceContext::new(parent, None))
            .ok()
    }
}
