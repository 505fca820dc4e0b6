//! The WAF stage: inspects the request line and headers, then the body (buffered up to the
//! route's limit, before any byte goes to the backend), and refuses with 403 when the anomaly
//! score reaches the threshold in `block` mode.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

use super::{Stage, Verdict};
use crate::problem::Refusal;
use crate::proxy::RequestCtx;
use crate::waf::{
    body_text, decode_body, CodingError, Exceeded, Inspection, Mode, OnBodyLimit, RequestView, Waf,
    WafPolicy,
};

/// What happened to the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyInspection {
    /// No body, or the WAF stopped at the headers.
    None,
    /// Buffered and inspected.
    Inspected,
    /// Larger than the limit; forwarded without inspection (`on_body_limit: pass`).
    PassedUninspected,
    /// Larger than the limit; refused with 413.
    Rejected,
    /// Of unknown length (chunked, or HTTP/2 without `Content-Length`) and longer than
    /// [`REPLAY_WINDOW`]: it could not be held back and handed on whole, so it was refused with
    /// 411.
    LengthRequired,
    /// Past a structure limit (nesting, parts, arguments); inspected up to it and forwarded
    /// (`on_body_limit: pass`).
    PassedPartly(Exceeded),
    /// Past a structure limit; refused with 400.
    RejectedComplex(Exceeded),
    /// In a `Content-Encoding` the WAF cannot decode (or broken data of one it can); inspected
    /// as sent and forwarded (`on_body_limit: pass`).
    PassedUndecoded,
    /// In a `Content-Encoding` the WAF cannot decode; inspected as sent, and refused with 415
    /// unless that inspection blocked it.
    RejectedUndecoded,
}

/// What the WAF concluded about a request.
#[derive(Debug, Clone)]
pub struct WafOutcome {
    /// Mode of the route.
    pub mode: Mode,
    /// Threshold of the route.
    pub threshold: u32,
    /// Matches and score.
    pub inspection: Inspection,
    /// Whether the score or a block rule called for blocking (enforced only in block mode).
    pub over_threshold: bool,
    /// Body handling.
    pub body: BodyInspection,
}

/// Runs the compiled WAF.
pub struct WafStage {
    waf: Arc<Waf>,
}

impl WafStage {
    /// A stage for `waf`.
    pub fn new(waf: Arc<Waf>) -> WafStage {
        WafStage { waf }
    }
}

/// The most of a request body Pingora keeps, once read, to send on to the backend (its retry
/// buffer). A body the WAF reads is handed to the backend whole by the proxy's
/// `request_body_filter`, which Pingora calls only when that buffer holds the end of the body.
/// With a declared `Content-Length` the buffer is switched on for the last this-many bytes, so
/// any body up to the route's `body_limit` can be held; a body of unknown length can be held
/// only while all of it fits.
pub const REPLAY_WINDOW: usize = 64 * 1024;

pub(super) enum BodyRead {
    Empty,
    Complete(Bytes),
    TooLarge {
        replayable: bool,
    },
    /// Of unknown length and past [`REPLAY_WINDOW`]: it can no longer be forwarded.
    LengthRequired,
    Failed,
}

pub(super) async fn read_body(session: &mut Session, limit: usize) -> BodyRead {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared == Some(0) || (declared.is_none() && session.as_mut().is_body_empty()) {
        return BodyRead::Empty;
    }
    if declared.is_some_and(|n| n > limit as u64) {
        // Nothing read yet: the body can stream to the backend untouched.
        return BodyRead::TooLarge { replayable: true };
    }
    // Unknown length: keep every byte read from the start, the only window that is sure to
    // hold the end of a body that fits in it.
    let mut replaying = declared.is_none();
    if replaying {
        session.as_mut().enable_retry_buffering();
    }
    let mut buf = BytesMut::with_capacity(declared.map(|n| n as usize).unwrap_or(4096).min(limit));
    loop {
        if !replaying
            && declared.is_some_and(|n| n.saturating_sub(buf.len() as u64) <= REPLAY_WINDOW as u64)
        {
            // The rest of a declared body fits in the window: what is read from here on is
            // what Pingora will offer to `request_body_filter`, which sends the whole body.
            session.as_mut().enable_retry_buffering();
            replaying = true;
        }
        match session.as_mut().read_request_body().await {
            Ok(Some(chunk)) => {
                buf.extend_from_slice(&chunk);
                let truncated = session.as_ref().retry_buffer_truncated();
                if buf.len() > limit {
                    // Unknown length (a declared length was checked above). What was read so
                    // far is replayed from the window, unless it overflowed.
                    return BodyRead::TooLarge {
                        replayable: !truncated,
                    };
                }
                if truncated {
                    return BodyRead::LengthRequired;
                }
            }
            Ok(None) => break,
            Err(e) => {
                log::debug!("reading request body failed: {e}");
                return BodyRead::Failed;
            }
        }
    }
    if buf.is_empty() {
        BodyRead::Empty
    } else {
        BodyRead::Complete(buf.freeze())
    }
}

/// The `Content-Type` (the first; differing ones were refused with the head) and the
/// `Content-Encoding` (every field, joined) of a request, read lossily.
pub(super) fn body_headers(headers: &http::HeaderMap) -> (Option<Cow<'_, str>>, Option<String>) {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()));
    let encodings: Vec<Cow<'_, str>> = headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .collect();
    let encoding = (!encodings.is_empty()).then(|| encodings.join(","));
    (content_type, encoding)
}

impl WafStage {
    /// Inspects a body read whole: decoded first when it declares a `Content-Encoding`, then
    /// parsed by its content type. Sets `outcome.body` and the score; `Err` is the answer when
    /// the body cannot be inspected and the route does not pass such bodies on.
    ///
    /// A body that cannot be decoded (a coding the WAF does not know, or data that is not what
    /// it claims) is inspected as sent, so an attack merely labelled `gzip` is still blocked and
    /// explained; if nothing blocks it, it is refused with 415 because what the backend will make
    /// of it is unknown.
    fn inspect_buffered(
        &self,
        session: &Session,
        policy: &WafPolicy,
        raw: &[u8],
        outcome: &mut WafOutcome,
    ) -> Result<(), Refusal> {
        let headers = &session.req_header().headers;
        // Header values that are not ASCII are read lossily, never skipped: a byte such as
        // `\xe9` in a parameter must not make the WAF see no content type (or no coding) where
        // the backend, which reads the rest of the value, sees one.
        let (content_type, encoding) = body_headers(headers);
        let pass = policy.on_body_limit == OnBodyLimit::Pass;
        let (decoded, undecodable) = match decode_body(encoding.as_deref(), raw, policy.body_limit)
        {
            Ok(decoded) => (decoded, false),
            Err(CodingError::TooLarge) if pass => {
                outcome.body = BodyInspection::PassedUninspected;
                return Ok(());
            }
            Err(CodingError::TooLarge) => {
                outcome.body = BodyInspection::Rejected;
                return Err(Refusal::BodyTooLarge);
            }
            Err(CodingError::Unsupported | CodingError::Corrupt) => (Cow::Borrowed(raw), true),
        };
        let body = body_text(content_type.as_deref(), &decoded);
        let parsed = self.waf.inspect_body(
            session.req_header().method.as_str(),
            content_type.as_deref(),
            &body,
            policy,
            &mut outcome.inspection,
        );
        outcome.over_threshold = policy.over_threshold(&outcome.inspection);
        // A block decided on what was inspected still counts as a block.
        let blocked = outcome.over_threshold && policy.mode == Mode::Block;
        if undecodable {
            if pass {
                outcome.body = BodyInspection::PassedUndecoded;
                return Ok(());
            }
            outcome.body = BodyInspection::RejectedUndecoded;
            return if blocked {
                Ok(())
            } else {
                Err(Refusal::UnsupportedContentEncoding)
            };
        }
        outcome.body = match parsed {
            Ok(()) => BodyInspection::Inspected,
            Err(e) if pass => BodyInspection::PassedPartly(e),
            Err(e) if blocked => BodyInspection::RejectedComplex(e),
            Err(e) => {
                outcome.body = BodyInspection::RejectedComplex(e);
                return Err(Refusal::BodyTooComplex(e.setting()));
            }
        };
        Ok(())
    }
}

#[async_trait]
impl Stage for WafStage {
    fn name(&self) -> &'static str {
        "waf"
    }

    async fn on_request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Verdict {
        let Some(route) = ctx.route.clone() else {
            return Verdict::Continue;
        };
        let policy: &WafPolicy = &route.waf;
        if policy.mode == Mode::Off {
            return Verdict::Continue;
        }
        let mut insp = Inspection::default();
        {
            let req = session.req_header();
            let view = RequestView {
                method: req.method.as_str(),
                path: &ctx.raw_path,
                query: ctx.raw_query.as_deref(),
                headers: req
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v.as_bytes())))
                    .collect(),
                client_ip: ctx.client_ip,
            };
            self.waf.inspect_head(&view, policy, &mut insp);
        }
        let mut outcome = WafOutcome {
            mode: policy.mode,
            threshold: policy.threshold,
            over_threshold: policy.over_threshold(&insp),
            inspection: insp,
            body: BodyInspection::None,
        };
        if outcome.over_threshold && policy.mode == Mode::Block {
            ctx.waf = Some(outcome);
            return Verdict::Respond(Refusal::WafBlocked);
        }

        match read_body(session, policy.body_limit).await {
            BodyRead::Empty => {}
            BodyRead::Failed => {
                ctx.waf = Some(outcome);
                return Verdict::Respond(Refusal::BadRequest(
                    "The request body could not be read.",
                ));
            }
            BodyRead::LengthRequired => {
                outcome.body = BodyInspection::LengthRequired;
                ctx.waf = Some(outcome);
                return Verdict::Respond(Refusal::LengthRequired);
            }
            BodyRead::TooLarge { replayable } => {
                if policy.on_body_limit == OnBodyLimit::Pass && replayable {
                    outcome.body = BodyInspection::PassedUninspected;
                } else {
                    outcome.body = BodyInspection::Rejected;
                    ctx.waf = Some(outcome);
                    return Verdict::Respond(Refusal::BodyTooLarge);
                }
            }
            BodyRead::Complete(buf) => {
                if buf.len() as u64 > ctx.config.limits.max_body_size.0 {
                    // A chunked body read past `limits.max_body_size` (a `body_limit` above it).
                    outcome.body = BodyInspection::Rejected;
                    ctx.waf = Some(outcome);
                    return Verdict::Respond(Refusal::BodyTooLarge);
                }
                if let Err(refusal) = self.inspect_buffered(session, policy, &buf, &mut outcome) {
                    ctx.waf = Some(outcome);
                    return Verdict::Respond(refusal);
                }
                // Pingora replays only the tail of the body; the proxy sends all of it.
                ctx.held_body = Some(buf);
            }
        }
        let block = outcome.over_threshold && policy.mode == Mode::Block;
        ctx.waf = Some(outcome);
        if block {
            Verdict::Respond(Refusal::WafBlocked)
        } else {
            Verdict::Continue
        }
    }
}
