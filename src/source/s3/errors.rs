//! How requests to the store are bounded, retried and reported.
//!
//! Every request is retried with exponential backoff on connection errors,
//! timeouts, HTTP 5xx (503 SlowDown among them) and 429, for at most
//! [`RETRY_FOR`]; a store that accepts a connection and then says nothing is
//! cut off after [`IDLE_TIMEOUT`] of silence. Whatever happens, a request
//! ends within [`HARD_BOUND`], so no reader and no FUSE thread waits longer.
//! A failure is described in one line: the HTTP status and S3 error code, or
//! the transport error, and how long it was retried.

use std::time::Duration;

use object_store::{BackoffConfig, ClientOptions, RetryConfig};

/// Connecting to the endpoint.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Silence on an open connection (no response, or a body that stops).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// One attempt of one request, body included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// No retry starts after this long since the first attempt.
pub const RETRY_FOR: Duration = Duration::from_secs(10);
/// Retries of one request at most (enough that [`RETRY_FOR`] is what ends them).
pub const MAX_RETRIES: usize = 40;
/// Any request, retries included, is abandoned after this long.
pub const HARD_BOUND: Duration = Duration::from_secs(60);

/// Retries with exponential backoff (0.1 s doubling up to 2 s), within [`RETRY_FOR`].
pub fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: MAX_RETRIES,
        retry_timeout: RETRY_FOR,
    }
}

/// HTTP client settings: the timeouts above, plain HTTP only for `http://` endpoints.
pub fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_read_timeout(IDLE_TIMEOUT)
        .with_timeout(ATTEMPT_TIMEOUT)
        .with_user_agent(object_store::HeaderValue::from_static(concat!(
            "nifuse/",
            env!("CARGO_PKG_VERSION")
        )))
}

/// What kind of failure a request met, for deciding what to tell the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// HTTP 404 for a key (NoSuchKey).
    NoKey,
    /// HTTP 404 NoSuchBucket.
    NoBucket,
    /// HTTP 401 / 403: credentials missing, wrong or without access.
    Denied,
    /// HTTP 412: the object is no longer the version first seen.
    Changed,
    /// A redirect: the bucket lives in another region.
    Redirect,
    /// Anything else: unreachable, overloaded, failing.
    Other,
}

/// A failed request: its kind and a one-line description.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The kind.
    pub kind: Kind,
    /// HTTP status and error code, or the transport error; and the retries.
    pub detail: String,
}

/// Describes a failed `object_store` request.
pub fn failure(e: &object_store::Error) -> Failure {
    let text = e.to_string();
    let code = between(&text, "<Code>", "</Code>");
    let status = status_of(&text);
    let kind = match (e, status) {
        (object_store::Error::Precondition { .. }, _) | (_, Some(412)) => Kind::Changed,
        (
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. },
            _,
        )
        | (_, Some(401 | 403)) => Kind::Denied,
        _ if code.as_deref() == Some("NoSuchBucket") => Kind::NoBucket,
        (object_store::Error::NotFound { .. }, _) | (_, Some(404)) => Kind::NoKey,
        (_, Some(300..=399)) => Kind::Redirect,
        _ if text.contains("redirect") => Kind::Redirect,
        _ => Kind::Other,
    };
    let what = match (status, &code) {
        (Some(s), Some(c)) => format!("HTTP {s} {c}"),
        (Some(s), None) => format!("HTTP {s}"),
        (None, _) => innermost(e),
    };
    let retried = between(&text, "after ", " retries")
        .map(|n| format!(", after {n} retries"))
        .unwrap_or_default();
    Failure {
        kind,
        detail: format!("{what}{retried}"),
    }
}

/// A failure that is not an HTTP response: what the ranged body looked like.
pub fn protocol(detail: impl Into<String>) -> Failure {
    Failure {
        kind: Kind::Other,
        detail: detail.into(),
    }
}

/// The failure of a request abandoned after [`HARD_BOUND`].
pub fn timed_out() -> Failure {
    protocol(format!("no answer within {} s", HARD_BOUND.as_secs()))
}

/// The HTTP status in an `object_store` error message ("status code: 503 ...").
fn status_of(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The text between the first `open` and the next `close`.
fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    let inner = text[start..start + len].trim();
    (!inner.is_empty() && inner.len() < 80).then(|| inner.to_string())
}

/// The innermost cause of an error ("Connection refused (os error 111)").
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(msg: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: msg.into(),
        }
    }

    #[test]
    fn statuses_codes_and_retries_are_picked_out() {
        let e = generic(
            "Error performing GET http://127.0.0.1:9/b/k in 10.2s, after 9 retries, max_retries: 10, \
             retry_timeout: 10s  - Server returned non-2xx status code: 503 Service Unavailable: \
             <Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>",
        );
        let f = failure(&e);
        assert_eq!(f.kind, Kind::Other);
        assert_eq!(f.detail, "HTTP 503 SlowDown, after 9 retries");
        let e = generic("status code: 404 Not Found: <Error><Code>NoSuchBucket</Code></Error>");
        assert_eq!(failure(&e).kind, Kind::NoBucket);
        let e = generic("status code: 403 Forbidden: <Error><Code>AccessDenied</Code></Error>");
        assert_eq!(failure(&e).kind, Kind::Denied);
        let e = generic("status code: 412 Precondition Failed");
        assert_eq!(failure(&e).kind, Kind::Changed);
        let e = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: "status code: 403 Forbidden: <Code>InvalidAccessKeyId</Code>".into(),
        };
        let f = failure(&e);
        assert_eq!(
            (f.kind, f.detail.as_str()),
            (Kind::Denied, "HTTP 403 InvalidAccessKeyId")
        );
    }

    #[test]
    fn transport_errors_name_their_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = object_store::Error::Generic {
            store: "S3",
            source: Box::new(io),
        };
        let f = failure(&e);
        assert_eq!(
            (f.kind, f.detail.as_str()),
            (Kind::Other, "Connection refused")
        );
    }
}
