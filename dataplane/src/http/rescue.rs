//! The one place where failures become HTTP responses: a status, a stable `x-nano-error` code and
//! a body that says what happened and what to do. Runtime-made responses always carry the header,
//! so they are never confused with an app's own.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::pool::{Failure, PoolError};

pub type Body = Full<Bytes>;

/// Why the runtime answers instead of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownHost {
        host: String,
    },
    MissingHost,
    BodyTooLarge {
        limit: u64,
    },
    BadBody {
        reason: String,
    },
    Pool {
        hostname: String,
        error: PoolError,
    },
    Failed {
        hostname: String,
        failure: Failure,
        timeout_secs: u64,
    },
    BadAppResponse {
        hostname: String,
        reason: String,
    },
}

impl Refusal {
    /// The stable code in `x-nano-error`.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownHost { .. } => "unknown-host",
            Refusal::MissingHost => "missing-host",
            Refusal::BodyTooLarge { .. } => "body-too-large",
            Refusal::BadBody { .. } => "bad-request-body",
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
                Failure::Timeout => "timeout",
                Failure::Unavailable { .. } => "app-unavailable",
            },
            Refusal::BadAppResponse { .. } => "bad-response",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::UnknownHost { .. } => StatusCode::NOT_FOUND,
            Refusal::MissingHost | Refusal::BadBody { .. } => StatusCode::BAD_REQUEST,
            Refusal::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Pool { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Failed { failure, .. } => match failure {
                Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
                Failure::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Refusal::BadAppResponse { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// One sentence for the client: what is wrong and what to do.
    pub fn message(&self) -> String {
        match self {
            Refusal::UnknownHost { host } => format!("no app is configured for host {host:?}"),
            Refusal::MissingHost => {
                "the request has no Host header; send one naming the app".into()
            }
            Refusal::BodyTooLarge { limit } => {
                format!("the request body is larger than the limit of {limit} bytes; send less")
            }
            Refusal::BadBody { reason } => format!("the request body could not be read: {reason}"),
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
            Refusal::Failed {
                hostname,
                failure,
                timeout_secs,
            } => match failure {
                Failure::HandlerException { message } => {
                    format!("the fetch handler of {hostname} threw an exception: {message}")
                }
                Failure::BadResponse { message } => format!("app {hostname}: {message}"),
                Failure::NoResponse => {
                    format!("the fetch handler of {hostname} finished without producing a response")
                }
                Failure::Timeout => format!(
                    "app {hostname} did not respond within its limit of {timeout_secs} s \
                     (limits.timeout_secs)"
                ),
                Failure::Unavailable { reason } => {
                    format!("app {hostname} is unavailable: {reason}")
                }
            },
            Refusal::BadAppResponse { hostname, reason } => {
                format!("app {hostname} returned a response that cannot be sent: {reason}")
            }
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
                if let Refusal::Failed {
                    failure: Failure::Timeout,
                    timeout_secs,
                    ..
                } = &self
                {
                    body["limit"] = serde_json::json!(format!("{timeout_secs}s"));
                }
                ("application/json", format!("{body}\n"))
            }
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert("x-nano-error", HeaderValue::from_static(code));
        if matches!(
            self,
            Refusal::Pool {
                error: PoolError::Full { .. },
                ..
            }
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_marked_and_explained() {
        let cases = [
            (
                Refusal::UnknownHost { host: "x".into() },
                404,
                "unknown-host",
            ),
            (Refusal::BodyTooLarge { limit: 10 }, 413, "body-too-large"),
            (
                Refusal::Pool {
                    hostname: "a".into(),
                    error: PoolError::Full { slots: 2 },
                },
                503,
                "queue-full",
            ),
            (
                Refusal::Failed {
                    hostname: "a".into(),
                    failure: Failure::Timeout,
                    timeout_secs: 3,
                },
                504,
                "timeout",
            ),
            (
                Refusal::Failed {
                    hostname: "a".into(),
                    failure: Failure::HandlerException {
                        message: "boom".into(),
                    },
                    timeout_secs: 3,
                },
                500,
                "handler-exception",
            ),
        ];
        for (refusal, status, code) in cases {
            let full = matches!(refusal, Refusal::Pool { .. });
            let response = refusal.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()["x-nano-error"], code);
            assert_eq!(response.headers().contains_key("retry-after"), full);
        }
    }
}
