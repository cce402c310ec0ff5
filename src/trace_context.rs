//! The W3C trace context a job carries from the code that enqueued it to each of its
//! runs, so the enqueue and the runs belong to one distributed trace (OpenTelemetry's
//! messaging conventions). Stored on the job as `traceContext`; each finished run keeps
//! its own span's `traceparent` in the attempts history, so a retry can link to the
//! attempt before it. Both are small and bounded: a traceparent is 55 characters and a
//! tracestate at most [`MAX_TRACESTATE_LEN`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest `tracestate` kept (the W3C limit).
pub const MAX_TRACESTATE_LEN: usize = 512;

/// Length of a version-00 `traceparent`: `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`.
const TRACEPARENT_LEN: usize = 55;

/// A span's W3C trace context, as carried by a job. Built checked by
/// [`TraceContext::new`]; one read back from a document written by anyone else is taken as
/// it is, and its accessors return `None` for parts it does not have.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tracestate: Option<String>,
}

impl TraceContext {
    /// A checked trace context: `traceparent` in the W3C format (lowercase hex, no all-zero
    /// ids, version `00`), `tracestate` printable ASCII of at most 512 characters (an empty
    /// one is dropped). Anything else is [`Error::InvalidOption`] `trace_context`.
    pub fn new(traceparent: impl Into<String>, tracestate: Option<String>) -> Result<Self> {
        let traceparent = traceparent.into();
        let tracestate = tracestate.filter(|s| !s.is_empty());
        check(&traceparent, tracestate.as_deref())?;
        Ok(TraceContext {
            traceparent,
            tracestate,
        })
    }

    /// `00-<trace id>-<parent span id>-<flags>`.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// Vendor entries, as the `tracestate` header carries them.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// Whether this context passes the checks of [`TraceContext::new`].
    pub fn is_valid(&self) -> bool {
        check(&self.traceparent, self.tracestate.as_deref()).is_ok()
    }

    /// The trace id: 32 lowercase hex digits (`None` if the traceparent is malformed).
    pub fn trace_id(&self) -> Option<&str> {
        is_traceparent(&self.traceparent).then(|| &self.traceparent[3..35])
    }

    /// The id of the span this context names: 16 lowercase hex digits.
    pub fn span_id(&self) -> Option<&str> {
        is_traceparent(&self.traceparent).then(|| &self.traceparent[36..52])
    }

    /// Whether the trace is sampled (flag bit 0).
    pub fn sampled(&self) -> bool {
        is_traceparent(&self.traceparent)
            && u8::from_str_radix(&self.traceparent[53..55], 16).is_ok_and(|f| f & 1 == 1)
    }
}

/// The checks of [`TraceContext::new`] (an empty tracestate already dropped).
fn check(traceparent: &str, tracestate: Option<&str>) -> Result<()> {
    if !is_traceparent(traceparent) {
        return Err(Error::option(
            "trace_context",
            "traceparent must be a W3C traceparent: 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>",
        ));
    }
    if let Some(state) = tracestate {
        if state.len() > MAX_TRACESTATE_LEN || !state.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(Error::option(
                "trace_context",
                format!(
                    "tracestate must be printable ASCII, at most {MAX_TRACESTATE_LEN} characters"
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `s` is a version-00 W3C traceparent with non-zero ids.
pub fn is_traceparent(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != TRACEPARENT_LEN || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return false;
    }
    let hex = |r: std::ops::Range<usize>| {
        b[r.clone()]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            && b[r].iter().any(|c| *c != b'0')
    };
    &s[..2] == "00"
        && hex(3..35)
        && hex(36..52)
        && b[53..55]
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn accepts_the_w3c_example_and_reads_its_parts() {
        let tc = TraceContext::new(GOOD, Some("congo=t61rcWkgMzE".into())).unwrap();
        assert_eq!(tc.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(tc.span_id(), Some("00f067aa0ba902b7"));
        assert!(tc.sampled());
        let unsampled = TraceContext::new(GOOD.replace("-01", "-00"), Some(String::new())).unwrap();
        assert!(!unsampled.sampled());
        assert_eq!(unsampled.tracestate(), None);
    }

    #[test]
    fn a_context_read_from_elsewhere_never_panics() {
        let doc = serde_json::json!({ "traceparent": "é", "tracestate": "x" });
        let odd: TraceContext = serde_json::from_value(doc).unwrap();
        assert!(!odd.is_valid());
        assert_eq!(
            (odd.trace_id(), odd.span_id(), odd.sampled()),
            (None, None, false)
        );
    }

    #[test]
    fn refuses_malformed_contexts() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            let err = TraceContext::new(bad, None).unwrap_err();
            assert_eq!(err.code(), "INVALID_OPTION", "{bad}");
        }
        let long = "k=".to_owned() + &"v".repeat(MAX_TRACESTATE_LEN);
        assert!(TraceContext::new(GOOD, Some(long)).is_err());
        assert!(TraceContext::new(GOOD, Some("k=v\n".into())).is_err());
    }
}
