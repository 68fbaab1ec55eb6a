//! Live tail: one hub of request events per app, for whoever tails it (`/_admin/tail`). A worker
//! looks at its app's hub when a request starts (one atomic load); only while someone tails the
//! app, and only for the share of requests its most-sampling tail wants (`sample`), does it keep
//! the request's console lines and publish an event when the request ends.
//! Publishing never waits: each tail reads from a bounded ring, and a tail that falls behind
//! loses the oldest events and is told how many.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

/// Events an app's hub holds for tails that have not read them yet.
pub const HUB_EVENTS: usize = 256;
/// Console lines one event carries; later ones are counted in `logs_dropped`.
pub const EVENT_LINES: usize = 32;
/// Bytes of one console line (or exception message) in an event; longer ones are cut.
pub const LINE_BYTES: usize = 1024;
/// Bytes of an exception's stack in an event.
pub const STACK_BYTES: usize = 4096;

/// What became of one request, as a tail shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// When it ended, in ms since the Unix epoch.
    pub time_ms: u64,
    pub hostname: String,
    pub method: String,
    pub url: String,
    pub status: u16,
    pub wall_ms: f64,
    pub cpu_ms: f64,
    /// `ok`, `exception`, `bad-response`, `cpu-limit`, `memory-limit`, `timeout`, `queue-full`,
    /// `unavailable`, `no-response`, `client-gone`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<Exception>,
    pub logs: Vec<Line>,
    #[serde(skip_serializing_if = "is_zero")]
    pub logs_dropped: u64,
    /// The request's headers, credentials masked; shown only to tails that ask (`headers=1`,
    /// see `to_json`).
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
    /// For an event of an accepted WebSocket: `message` or `close` (the URL is the upgrade's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket: Option<&'static str>,
    /// The probability with which this request's event was recorded (see [`Hub::draw`]).
    #[serde(skip)]
    pub sampled: f64,
}

/// Headers whose values a tail never shows.
const SECRET_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie"];

/// `headers` as a tail may show them: credentials masked, each value cut to `LINE_BYTES`.
pub fn masked_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let secret = SECRET_HEADERS.iter().any(|s| name.eq_ignore_ascii_case(s));
            let value = if secret {
                "***".to_owned()
            } else {
                cut(value, LINE_BYTES)
            };
            (name.clone(), value)
        })
        .collect()
}

/// An event's JSON for a tail: with its headers (as an object) only if the tail asked.
pub fn to_json(event: &Event, headers: bool) -> serde_json::Value {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if headers && let Some(object) = value.as_object_mut() {
        let map: serde_json::Map<String, serde_json::Value> = event
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone().into()))
            .collect();
        object.insert("headers".into(), map.into());
    }
    value
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize)]
pub struct Exception {
    pub message: String,
    pub stack: String,
}

/// One console line: `debug`, `log`, `warn` or `error`, and its text.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub level: &'static str,
    pub text: String,
}

/// The console level names, by the runtime's numbers (0 debug, 1 log/info, 2 warn, 3 error).
pub fn level_name(level: i32) -> &'static str {
    match level {
        0 => "debug",
        1 => "log",
        2 => "warn",
        _ => "error",
    }
}

/// `text` cut to at most `max` bytes (see `text::truncated`), owned for an event.
pub fn cut(text: &str, max: usize) -> String {
    crate::text::truncated(text, max).into_owned()
}

/// An app's hub.
pub struct Hub {
    tailing: Mutex<Tailing>,
    /// The highest sample rate among the tails (f64 bits; 0 with none): all a request reads.
    max_rate: AtomicU64,
    next_tail: AtomicU64,
}

/// The tails of an app now.
#[derive(Default)]
struct Tailing {
    /// The sample rate each tail asked for, by tail.
    rates: Vec<(u64, f64)>,
    /// The events' channel while someone tails the app: made by the first tail, dropped with
    /// the last (its ring of `HUB_EVENTS` slots is about 10 KB, which every app once requested
    /// would otherwise keep for the life of the process).
    events: Option<broadcast::Sender<Arc<Event>>>,
}

static HUBS: LazyLock<Mutex<HashMap<String, Arc<Hub>>>> = LazyLock::new(Default::default);

/// The hub of `hostname` (made on first use; hubs are small and live as long as the process).
pub fn hub(hostname: &str) -> Arc<Hub> {
    let mut hubs = HUBS.lock().unwrap_or_else(|e| e.into_inner());
    hubs.entry(hostname.to_owned())
        .or_insert_with(|| {
            Arc::new(Hub {
                tailing: Mutex::default(),
                max_rate: AtomicU64::new(0f64.to_bits()),
                next_tail: AtomicU64::new(0),
            })
        })
        .clone()
}

impl Hub {
    /// Whether anyone tails the app now (the request path reads `max_rate` instead, in `draw`).
    #[cfg(test)]
    fn active(&self) -> bool {
        !self.lock().rates.is_empty()
    }

    /// Whether to record the request starting now: `Some(p)`, the probability it was drawn
    /// with (the highest sample rate among the tails), or `None` (nobody tails the app, or the
    /// request is not in the sample). A tail that wants less keeps `its rate / p` of what it
    /// reads.
    pub fn draw(&self) -> Option<f64> {
        let bits = self.max_rate.load(Ordering::Relaxed);
        // Nobody tails the app (or nobody wants any of its requests): the common case.
        if bits == 0 {
            return None;
        }
        let rate = f64::from_bits(bits);
        if rate >= 1.0 {
            Some(1.0)
        } else {
            (rate > 0.0 && nano_proto::tail::sampled(rate)).then_some(rate)
        }
    }

    /// Hands `event` to every tail (never waits; with no tail it is dropped).
    pub fn publish(&self, event: Event) {
        if let Some(events) = &self.lock().events {
            let _ = events.send(Arc::new(event));
        }
    }

    /// Starts tailing, for `sample` of the requests (0 to 1): events published from now on.
    pub fn subscribe(self: &Arc<Self>, sample: f64) -> Tail {
        let id = self.next_tail.fetch_add(1, Ordering::Relaxed);
        let events = {
            let mut tailing = self.lock();
            self.set_rate(&mut tailing, id, Some(sample));
            tailing
                .events
                .get_or_insert_with(|| broadcast::channel(HUB_EVENTS).0)
                .subscribe()
        };
        Tail {
            events,
            hub: self.clone(),
            id,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tailing> {
        self.tailing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records (or, with `None`, forgets) tail `id`'s sample rate and updates the highest.
    fn set_rate(&self, tailing: &mut Tailing, id: u64, sample: Option<f64>) {
        tailing.rates.retain(|(tail, _)| *tail != id);
        if let Some(sample) = sample {
            tailing.rates.push((id, sample.clamp(0.0, 1.0)));
        }
        let max = tailing.rates.iter().map(|(_, r)| *r).fold(0.0, f64::max);
        self.max_rate.store(max.to_bits(), Ordering::Relaxed);
    }
}

/// One tail of an app; it stops counting as a tail when dropped.
pub struct Tail {
    events: broadcast::Receiver<Arc<Event>>,
    hub: Arc<Hub>,
    id: u64,
}

/// What a tail reads next.
pub enum Next {
    Event(Arc<Event>),
    /// The tail fell this many events behind and lost them.
    Dropped(u64),
}

/// Changes the sample rate of one tail while it reads (a fleet tail's, as the control plane's
/// tails of the app come and go).
pub struct Rate {
    hub: Arc<Hub>,
    id: u64,
}

impl Rate {
    pub fn set(&self, sample: f64) {
        self.hub
            .set_rate(&mut self.hub.lock(), self.id, Some(sample));
    }
}

impl Tail {
    /// A handle that changes this tail's sample rate.
    pub fn rate(&self) -> Rate {
        Rate {
            hub: self.hub.clone(),
            id: self.id,
        }
    }

    pub async fn next(&mut self) -> Next {
        loop {
            match self.events.recv().await {
                Ok(event) => return Next::Event(event),
                Err(broadcast::error::RecvError::Lagged(lost)) => return Next::Dropped(lost),
                // The channel lives as long as a tail does (it goes with the last), so it never
                // closes under one; should it, wait for nothing rather than spin.
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let mut tailing = self.hub.lock();
        self.hub.set_rate(&mut tailing, self.id, None);
        if tailing.rates.is_empty() {
            tailing.events = None;
        }
    }
}

pub use nano_proto::tail::Filter;

/// The app and the filter of a `/_admin/tail` query (`hostname`, `status`, `method`,
/// `path_prefix`, `search`, `sample`); `Err` names what is wrong.
pub fn from_query(query: &str) -> Result<(Option<String>, Filter, bool), String> {
    let mut hostname = None;
    let mut headers = false;
    let mut filter = Filter::default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match &*key {
            "hostname" => hostname = Some(value),
            "headers" => headers = matches!(value.as_str(), "1" | "true" | ""),
            "status" => filter.set_status(&value)?,
            "method" => filter.method = Some(value.to_ascii_uppercase()),
            "path_prefix" => filter.path_prefix = Some(value),
            "search" => filter.search = Some(value),
            "sample" => {
                let sample = value
                    .parse::<f64>()
                    .map_err(|_| format!("sample {value:?}: use a number from 0 to 1"))?;
                filter.set_sample(sample)?;
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?} (hostname, status, method, path_prefix, \
                     search, sample, headers)"
                ));
            }
        }
    }
    Ok((hostname, filter, headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(status: u16, outcome: &'static str, url: &str) -> Event {
        Event {
            time_ms: 0,
            hostname: "a.test".into(),
            method: "GET".into(),
            url: url.into(),
            status,
            wall_ms: 1.0,
            cpu_ms: 0.5,
            outcome,
            exception: None,
            logs: vec![Line {
                level: "log",
                text: "hello there".into(),
            }],
            logs_dropped: 0,
            headers: vec![("cookie".into(), "***".into())],
            websocket: None,
            sampled: 1.0,
        }
    }

    #[test]
    fn filters_read_from_the_query_select_events() {
        let admits = |f: &Filter, e: Event| f.admits(&serde_json::to_value(e).unwrap());
        let (host, f, headers) = from_query("hostname=a.test&status=5xx&path_prefix=/api").unwrap();
        assert!(!headers);
        assert_eq!(host.as_deref(), Some("a.test"));
        assert!(admits(&f, event(503, "cpu-limit", "http://a.test/api/x")));
        assert!(!admits(&f, event(200, "ok", "http://a.test/api/x")));
        let (_, f, _) = from_query("search=there&method=get").unwrap();
        assert!(admits(&f, event(200, "ok", "http://a.test/")));
        assert!(from_query("status=teapot").is_err());
        assert!(from_query("sample=2").is_err());
        assert!(from_query("colour=red").is_err());
    }

    #[test]
    fn credentials_are_masked_and_headers_shown_only_on_request() {
        let masked = masked_headers(&[
            ("Authorization".into(), "Bearer x".into()),
            ("cookie".into(), "a=b".into()),
            ("accept".into(), "*/*".into()),
        ]);
        assert_eq!(masked[0].1, "***");
        assert_eq!(masked[1].1, "***");
        assert_eq!(masked[2].1, "*/*");
        let e = event(200, "ok", "http://a.test/");
        assert!(to_json(&e, false).get("headers").is_none());
        assert_eq!(to_json(&e, true)["headers"]["cookie"], "***");
    }

    #[test]
    fn a_tail_that_falls_behind_is_told_what_it_lost() {
        let hub = hub("lag.test");
        assert!(!hub.active());
        let mut tail = hub.subscribe(1.0);
        assert!(hub.active());
        for _ in 0..HUB_EVENTS + 10 {
            hub.publish(event(200, "ok", "http://lag.test/"));
        }
        let first = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(tail.next());
        assert!(matches!(first, Next::Dropped(10)));
        drop(tail);
        assert!(!hub.active());
        assert!(
            hub.lock().events.is_none(),
            "an app nobody tails holds no ring of events"
        );
        // A new tail starts afresh: nothing left over from before.
        let mut again = hub.subscribe(1.0);
        hub.publish(event(200, "ok", "http://lag.test/again"));
        let next = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(again.next());
        assert!(matches!(next, Next::Event(e) if e.url.ends_with("/again")));
    }

    #[test]
    fn a_node_records_only_what_its_most_sampling_tail_wants() {
        let hub = hub("sample.test");
        assert_eq!(hub.draw(), None, "nobody tails");
        let none = hub.subscribe(0.0);
        assert!(
            (0..100).all(|_| hub.draw().is_none()),
            "sample=0 records nothing"
        );
        let some = hub.subscribe(0.25);
        let drawn: Vec<_> = (0..10_000).filter_map(|_| hub.draw()).collect();
        assert!(drawn.iter().all(|p| *p == 0.25));
        assert!((1500..3500).contains(&drawn.len()), "{}", drawn.len());
        let all = hub.subscribe(1.0);
        assert!((0..100).all(|_| hub.draw() == Some(1.0)));
        drop(all);
        assert!(
            hub.draw().is_none_or(|p| p == 0.25),
            "back to the highest left"
        );
        drop((none, some));
        assert_eq!(hub.draw(), None);
    }
}
