//! The one place where failures become HTTP responses: a status, a stable `x-nano-error` code and
//! a body that says what happened and what to do. Runtime-made responses always carry the header,
//! so they are never confused with an app's own.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::job::Failure;
use crate::limits::cpu::LimitKind;
use crate::limits::memory::MIB;
use crate::pool::PoolError;

/// Every response body: whole bytes, or chunks streamed from a worker.
pub type Body = http_body_util::Either<Full<Bytes>, ChannelBody>;

/// A body of whole bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Either::Left(Full::new(bytes.into()))
}

/// A body whose chunks arrive from a worker; an `Err` chunk (or the channel closing after the
/// worker flagged a failure) aborts the response.
pub struct ChannelBody(pub crate::job::StreamBody);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0.chunks.poll_recv(cx).map(|chunk| match chunk {
            Some(chunk) => Some(
                chunk
                    .map(hyper::body::Frame::data)
                    .map_err(std::io::Error::other),
            ),
            None if self.0.failed.load(std::sync::atomic::Ordering::Acquire) => Some(Err(
                std::io::Error::other("the response stream ended before it was complete"),
            )),
            None => None,
        })
    }

    /// Exact when the app's stream promised its length: hyper then sends it as Content-Length
    /// (and cuts the connection if the stream ends short of it).
    fn size_hint(&self) -> hyper::body::SizeHint {
        match self.0.length {
            Some(length) => hyper::body::SizeHint::with_exact(length),
            None => hyper::body::SizeHint::default(),
        }
    }
}

/// Why the runtime answers instead of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownHost {
        host: String,
    },
    NotFound {
        what: String,
    },
    Unauthorized,
    MissingHost,
    /// A `Host` (or authority) that is not `host[:port]`, or more than one.
    BadHost {
        reason: String,
    },
    /// `CONNECT`: NANO is not a proxy.
    MethodNotAllowed {
        method: String,
    },
    UriTooLong {
        limit: usize,
    },
    BodyTooLarge {
        limit: u64,
    },
    BadBody {
        reason: String,
    },
    /// The body did not arrive within `server.body_timeout_secs`.
    BodyTimeout {
        secs: u64,
    },
    /// The node already holds `server.max_buffered_body_bytes` of request bodies.
    NodeBusy {
        limit: u64,
    },
    Pool {
        hostname: String,
        error: PoolError,
    },
    Failed {
        hostname: String,
        failure: Failure,
    },
    BadAppResponse {
        hostname: String,
        reason: String,
    },
    /// An admin request's query is not valid.
    BadQuery {
        reason: String,
    },
    /// The app already holds `websockets.max_sockets` open WebSockets.
    TooManySockets {
        hostname: String,
        limit: u32,
    },
}

impl Refusal {
    /// The stable code in `x-nano-error`.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownHost { .. } => "unknown-host",
            Refusal::NotFound { .. } => "not-found",
            Refusal::Unauthorized => "unauthorized",
            Refusal::MissingHost => "missing-host",
            Refusal::BadHost { .. } => "bad-host",
            Refusal::MethodNotAllowed { .. } => "method-not-allowed",
            Refusal::UriTooLong { .. } => "uri-too-long",
            Refusal::BodyTooLarge { .. } => "body-too-large",
            Refusal::BadBody { .. } => "bad-request-body",
            Refusal::BodyTimeout { .. } => "body-timeout",
            Refusal::NodeBusy { .. } => "node-busy",
            Refusal::Pool {
                error: PoolError::Full { .. },
                ..
            } => "queue-full",
            Refusal::Pool {
                error: PoolError::Unavailable { .. },
                ..
            } => "app-unavailable",
            Refusal::Failed { failure, .. } => match failure {
                Failure::HandlerException { .. } => "handler-exception",
                Failure::BadResponse { .. } => "bad-response",
                Failure::NoResponse => "no-response",
                Failure::Limit {
                    kind: LimitKind::Cpu,
                    ..
                } => "cpu-limit",
                Failure::Limit {
                    kind: LimitKind::Memory,
                    ..
                }
                | Failure::Memory { .. } => "memory-limit",
                Failure::Limit {
                    kind: LimitKind::Wall,
                    ..
                } => "timeout",
                Failure::Unavailable { .. } => "app-unavailable",
            },
            Refusal::BadAppResponse { .. } => "bad-response",
            Refusal::TooManySockets { .. } => "too-many-websockets",
            Refusal::BadQuery { .. } => "bad-query",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::UnknownHost { .. } | Refusal::NotFound { .. } => StatusCode::NOT_FOUND,
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::MissingHost
            | Refusal::BadHost { .. }
            | Refusal::BadBody { .. }
            | Refusal::BadQuery { .. } => StatusCode::BAD_REQUEST,
            Refusal::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Refusal::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Refusal::Pool { .. } | Refusal::NodeBusy { .. } | Refusal::TooManySockets { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Refusal::Failed { failure, .. } => StatusCode::from_u16(failure.http_status())
                .expect("Failure::http_status answers a valid status"),
            Refusal::BadAppResponse { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// One sentence for the client: what is wrong and what to do.
    pub fn message(&self) -> String {
        match self {
            Refusal::UnknownHost { host } => format!("no app is configured for host {host:?}"),
            Refusal::NotFound { what } => what.clone(),
            Refusal::Unauthorized => "the admin surface needs a loopback client or the header \
                                      `Authorization: Bearer <admin.token>`"
                .into(),
            Refusal::MissingHost => {
                "the request has no Host header; send one naming the app".into()
            }
            Refusal::UriTooLong { limit } => {
                format!("the request target is longer than {limit} bytes; shorten the URL")
            }
            Refusal::BodyTooLarge { limit } => {
                format!("the request body is larger than the limit of {limit} bytes; send less")
            }
            Refusal::BadBody { reason } => format!("the request body could not be read: {reason}"),
            Refusal::BadHost { reason } => {
                format!("the request's Host is not valid: {reason}; send one host[:port]")
            }
            Refusal::MethodNotAllowed { method } => {
                format!("{method} is not served: NANO is not a proxy; send GET, POST and the like")
            }
            Refusal::BodyTimeout { secs } => format!(
                "the request body did not arrive within {secs} s (server.body_timeout_secs); \
                 send it faster or in a smaller request"
            ),
            Refusal::NodeBusy { limit } => format!(
                "the node already holds {limit} bytes of request bodies \
                 (server.max_buffered_body_bytes); retry after a moment"
            ),
            Refusal::Pool {
                hostname,
                error: PoolError::Full { slots },
            } => format!(
                "app {hostname} is busy: all {slots} request slots are taken; retry after a moment"
            ),
            Refusal::Pool {
                hostname,
                error: PoolError::Unavailable { reason },
            } => {
                format!("app {hostname} is unavailable: {reason}")
            }
            Refusal::Failed { hostname, failure } => match failure {
                Failure::HandlerException { message } => {
                    format!("the fetch handler of {hostname} threw an exception: {message}")
                }
                Failure::BadResponse { message } => format!("app {hostname}: {message}"),
                Failure::NoResponse => {
                    format!("the fetch handler of {hostname} finished without producing a response")
                }
                Failure::Limit {
                    kind: LimitKind::Wall,
                    limit,
                    ..
                } => format!(
                    "app {hostname} did not respond within its limit of {} s \
                     (limits.timeout_secs)",
                    limit.as_secs()
                ),
                Failure::Limit {
                    kind: LimitKind::Cpu,
                    limit,
                    used,
                } => format!(
                    "the request to {hostname} was stopped: it used {} ms of CPU, over the limit \
                     of {} ms (limits.cpu_ms); make the handler do less work per request",
                    used.as_millis(),
                    limit.as_millis()
                ),
                Failure::Limit {
                    kind: LimitKind::Memory,
                    ..
                } => format!(
                    "the request to {hostname} was stopped: it used more memory than \
                     limits.memory_mb allows; use less memory per request"
                ),
                Failure::Memory { limit, used } => format!(
                    "the request to {hostname} was stopped: its isolate needed {} MiB, over the \
                     limit of {} MiB (limits.memory_mb); use less memory per request",
                    used.div_ceil(MIB),
                    limit / MIB
                ),
                Failure::Unavailable { reason } => {
                    format!("app {hostname} is unavailable: {reason}")
                }
            },
            Refusal::BadAppResponse { hostname, reason } => {
                format!("app {hostname} returned a response that cannot be sent: {reason}")
            }
            Refusal::BadQuery { reason } => format!("the query is not valid: {reason}"),
            Refusal::TooManySockets { hostname, limit } => format!(
                "app {hostname} already holds {limit} open WebSockets on this node \
                 (apps[].websockets.max_sockets); retry after a moment"
            ),
        }
    }

    /// The limit and what was used, for limit refusals.
    fn limit_fields(&self) -> Option<(String, String)> {
        let Refusal::Failed { failure, .. } = self else {
            return None;
        };
        let ms = |d: &Duration| format!("{}ms", d.as_millis());
        match failure {
            Failure::Limit {
                kind: LimitKind::Wall,
                limit,
                used,
            } => Some((
                format!("{}s", limit.as_secs()),
                format!("{:.3}s", used.as_secs_f64()),
            )),
            Failure::Limit { limit, used, .. } => Some((ms(limit), ms(used))),
            Failure::Memory { limit, used } => Some((
                format!("{}MiB", limit / MIB),
                format!("{}MiB", used.div_ceil(MIB)),
            )),
            _ => None,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let code = self.code();
        let (content_type, body) = match &self {
            Refusal::UnknownHost { .. } => {
                ("text/plain; charset=utf-8", format!("{}\n", self.message()))
            }
            _ => {
                let mut body = serde_json::json!({ "error": code, "message": self.message() });
                if let Some((limit, used)) = self.limit_fields() {
                    body["limit"] = limit.into();
                    body["used"] = used.into();
                }
                ("application/json", format!("{body}\n"))
            }
        };
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert("x-nano-error", HeaderValue::from_static(code));
        if matches!(
            self,
            Refusal::Pool {
                error: PoolError::Full { .. },
                ..
            } | Refusal::NodeBusy { .. }
                | Refusal::TooManySockets { .. }
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(failure: Failure) -> Refusal {
        Refusal::Failed {
            hostname: "a".into(),
            failure,
        }
    }

    #[test]
    fn every_refusal_is_marked_and_explained() {
        let secs = Duration::from_secs;
        let ms = Duration::from_millis;
        let cases = [
            (
                Refusal::UnknownHost { host: "x".into() },
                404,
                "unknown-host",
            ),
            (Refusal::BodyTooLarge { limit: 10 }, 413, "body-too-large"),
            (Refusal::UriTooLong { limit: 10 }, 414, "uri-too-long"),
            (
                Refusal::Pool {
                    hostname: "a".into(),
                    error: PoolError::Full { slots: 2 },
                },
                503,
                "queue-full",
            ),
            (
                failed(Failure::Limit {
                    kind: LimitKind::Wall,
                    limit: secs(3),
                    used: secs(3),
                }),
                504,
                "timeout",
            ),
            (
                failed(Failure::Limit {
                    kind: LimitKind::Cpu,
                    limit: ms(50),
                    used: ms(51),
                }),
                503,
                "cpu-limit",
            ),
            (
                failed(Failure::Memory {
                    limit: 64 * MIB,
                    used: 80 * MIB,
                }),
                503,
                "memory-limit",
            ),
            (
                failed(Failure::HandlerException {
                    message: "boom".into(),
                }),
                500,
                "handler-exception",
            ),
            // Not reachable from a tenant's code today (a promise that never settles ends at
            // timeout_secs): the answer if the request's work ends with no response.
            (failed(Failure::NoResponse), 500, "no-response"),
        ];
        for (refusal, status, code) in cases {
            let full = matches!(refusal, Refusal::Pool { .. });
            let response = refusal.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()["x-nano-error"], code);
            assert_eq!(response.headers().contains_key("retry-after"), full);
        }
    }

    #[test]
    fn limit_refusals_name_the_limit_and_what_was_used() {
        let refusal = failed(Failure::Limit {
            kind: LimitKind::Cpu,
            limit: Duration::from_millis(50),
            used: Duration::from_millis(57),
        });
        assert_eq!(refusal.limit_fields(), Some(("50ms".into(), "57ms".into())));
        assert!(refusal.message().contains("limits.cpu_ms"));
    }
}
