//! Maps Pingora errors to the gateway's answers and to upstream-error metric kinds.

use pingora::{Error, ErrorSource, ErrorType};

use crate::problem::Refusal;

/// The `kind` label of `portcullis_upstream_errors_total` for an upstream error.
pub fn upstream_kind(e: &Error) -> &'static str {
    match e.etype() {
        ErrorType::ConnectTimedout => "connect_timeout",
        ErrorType::ConnectRefused => "connect_refused",
        ErrorType::ConnectNoRoute | ErrorType::ConnectError | ErrorType::BindError => {
            "connect_error"
        }
        ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout
        | ErrorType::InvalidCert
        | ErrorType::HandshakeError => "tls_error",
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => "timeout",
        ErrorType::ConnectionClosed => "closed",
        ErrorType::ReadError | ErrorType::WriteError => "reset",
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::H2Error => {
            "invalid_response"
        }
        _ => "other",
    }
}

/// True when `e` says the client closed or reset its connection (or stopped reading) before the
/// answer was complete: nothing can be answered, and the request is logged with status 499.
pub fn client_went_away(e: &Error) -> bool {
    e.esource() == &ErrorSource::Downstream
        && matches!(
            e.etype(),
            ErrorType::ReadError
                | ErrorType::WriteError
                | ErrorType::ConnectionClosed
                | ErrorType::WriteTimedout
        )
}

/// What to answer for a request that failed with `e`; `None` when the client is gone.
pub fn refusal_for(e: &Error) -> Option<Refusal> {
    match e.esource() {
        ErrorSource::Upstream => Some(match e.etype() {
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                Refusal::GatewayTimeout
            }
            _ => Refusal::BadGateway,
        }),
        ErrorSource::Downstream if client_went_away(e) => None,
        ErrorSource::Downstream => match e.etype() {
            // The client stopped sending its body: say so before closing (RFC 9110 408).
            ErrorType::ReadTimedout => Some(Refusal::ClientTimeout),
            _ => Some(Refusal::BadRequest("The request could not be parsed.")),
        },
        ErrorSource::Internal | ErrorSource::Unset => match e.etype() {
            ErrorType::HTTPStatus(400) => {
                Some(Refusal::BadRequest("The request could not be parsed."))
            }
            ErrorType::HTTPStatus(413) => Some(Refusal::BodyTooLarge),
            ErrorType::HTTPStatus(502) => Some(Refusal::BadGateway),
            ErrorType::HTTPStatus(504) => Some(Refusal::GatewayTimeout),
            _ => Some(Refusal::Internal),
        },
    }
}
