//! The filters of a live tail, shared by a node's `/_admin/tail` and the control plane's
//! `Control.Tail`: both see an event as the JSON the node writes.

use serde_json::Value;

/// Which events a tail shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// `5xx`, `4xx`, `ok` (status below 400) or `error` (an outcome other than `ok`).
    pub status: Option<String>,
    /// Upper case.
    pub method: Option<String>,
    pub path_prefix: Option<String>,
    /// Text anywhere in the URL, the console lines or the exception.
    pub search: Option<String>,
    /// The share of events shown, 0 to 1.
    pub sample: f64,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            status: None,
            method: None,
            path_prefix: None,
            search: None,
            sample: 1.0,
        }
    }
}

impl Filter {
    /// Sets `status`, refusing what is not one of its four values.
    pub fn set_status(&mut self, value: &str) -> Result<(), String> {
        if !matches!(value, "5xx" | "4xx" | "ok" | "error") {
            return Err(format!("status {value:?}: use 5xx, 4xx, ok or error"));
        }
        self.status = Some(value.to_owned());
        Ok(())
    }

    /// Sets `sample`, refusing what is not a number from 0 to 1.
    pub fn set_sample(&mut self, value: f64) -> Result<(), String> {
        if !(0.0..=1.0).contains(&value) {
            return Err(format!("sample {value}: use a number from 0 to 1"));
        }
        self.sample = value;
        Ok(())
    }

    /// The filter a `Control.Tail` request asks for.
    pub fn from_request(request: &crate::v1::TailRequest) -> Result<Self, String> {
        let mut filter = Self::default();
        let given = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        if !request.status.is_empty() {
            filter.set_status(&request.status)?;
        }
        filter.method = given(&request.method).map(|m| m.to_ascii_uppercase());
        filter.path_prefix = given(&request.path_prefix);
        filter.search = given(&request.search);
        if let Some(sample) = request.sample {
            filter.set_sample(sample)?;
        }
        Ok(filter)
    }

    /// Whether `event`, recorded for every request, passes (sampling included).
    pub fn admits(&self, event: &Value) -> bool {
        self.sample_hit_given(1.0) && self.matches(event)
    }

    /// Whether the next event is in this tail's sample, for an event that was itself kept with
    /// probability `captured` (a node records events only at the highest rate its tails want;
    /// 0: every event): it passes with probability `sample / captured`, so this tail sees
    /// `sample` of all requests. Draw it before building the event's JSON: what is sampled out
    /// costs nothing more.
    pub fn sample_hit_given(&self, captured: f64) -> bool {
        let rate = if captured > 0.0 {
            self.sample / captured
        } else {
            self.sample
        };
        rate >= 1.0 || sampled(rate)
    }

    /// Whether `event` passes the filters other than sampling.
    pub fn matches(&self, event: &Value) -> bool {
        let status = event["status"].as_u64().unwrap_or(0);
        let outcome = event["outcome"].as_str().unwrap_or("");
        let url = event["url"].as_str().unwrap_or("");
        let status_ok = match self.status.as_deref() {
            Some("5xx") => status >= 500,
            Some("4xx") => (400..500).contains(&status),
            Some("ok") => status < 400,
            Some("error") => outcome != "ok",
            _ => true,
        };
        status_ok
            && self
                .method
                .as_ref()
                .is_none_or(|m| event["method"].as_str() == Some(m.as_str()))
            && self
                .path_prefix
                .as_ref()
                .is_none_or(|prefix| path(url).starts_with(prefix.as_str()))
            && self.search.as_ref().is_none_or(|text| {
                let text = text.as_str();
                let in_logs = event["logs"].as_array().is_some_and(|logs| {
                    logs.iter()
                        .any(|l| l["text"].as_str().is_some_and(|t| t.contains(text)))
                });
                let in_exception = ["message", "stack"].iter().any(|key| {
                    event["exception"][key]
                        .as_str()
                        .is_some_and(|t| t.contains(text))
                });
                url.contains(text) || in_logs || in_exception
            })
    }
}

fn path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or("/", |i| &after_scheme[i..])
}

/// True with probability `rate` (a per-thread xorshift: sampling needs no strong randomness).
pub fn sampled(rate: f64) -> bool {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
                | 1,
        );
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x as f64 / u64::MAX as f64) < rate
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(status: u64, outcome: &str, url: &str) -> Value {
        json!({ "status": status, "outcome": outcome, "url": url, "method": "GET",
                "logs": [{ "level": "log", "text": "hello there" }] })
    }

    #[test]
    fn filters_select_events() {
        let mut f = Filter {
            path_prefix: Some("/api".into()),
            ..Filter::default()
        };
        f.set_status("5xx").unwrap();
        assert!(f.admits(&event(503, "cpu-limit", "http://a.test/api/x")));
        assert!(!f.admits(&event(200, "ok", "http://a.test/api/x")));
        assert!(!f.admits(&event(500, "exception", "http://a.test/other")));
        let f = Filter {
            search: Some("there".into()),
            method: Some("GET".into()),
            ..Filter::default()
        };
        assert!(f.admits(&event(200, "ok", "http://a.test/")));
        let mut f = Filter::default();
        f.set_sample(0.0).unwrap();
        assert!(!f.admits(&event(200, "ok", "http://a.test/")));
        assert!(Filter::default().set_status("teapot").is_err());
        assert!(Filter::default().set_sample(2.0).is_err());
    }
}
