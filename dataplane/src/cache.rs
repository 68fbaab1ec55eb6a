//! The Cache API's storage (`caches.default`, `caches.open(name)`): node-local, in memory, one
//! partition per app (its hostname), so an app never sees another's entries. Each app's entries
//! are bounded by `cache.app_quota_mb`, all of them together by `cache.memory_mb`; past either
//! the least recently used entries go. Entries outlive isolates and reloads of their app, and
//! go when the app is removed.
//!
//! What is stored, and for how long, follows Workers: only what `Cache-Control` (`s-maxage`,
//! then `max-age`), else `Expires`, else the status code's default edge TTL allows; never
//! `no-store`, `no-cache`, `private` or a `Set-Cookie` response (unless `private=Set-Cookie`,
//! which stores it without the header). `match` answers conditional requests (`If-None-Match`,
//! `If-Modified-Since`) with 304 and a single `Range` with 206 (or 416) from the stored body.
//! The JS half is `webapi/js/cache.js`; the ops are in `webapi`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::metrics::METRICS;

/// A stored response.
struct Entry {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    stored: SystemTime,
    expires: Instant,
    /// Bytes it counts against the quotas: URL, headers, body.
    size: usize,
    /// Its place in the least-recently-used order.
    used: u64,
}

/// What `match` copies out of an entry.
struct Stored {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    at: SystemTime,
}

/// (cache name, URL without fragment).
type Key = (String, String);

#[derive(Default)]
struct AppCache {
    entries: HashMap<Key, Entry>,
    /// Keys by last use, oldest first.
    order: BTreeMap<u64, Key>,
    bytes: usize,
}

struct Inner {
    node_bytes: usize,
    app_bytes: usize,
    apps: HashMap<Arc<str>, AppCache>,
    /// Every entry of every app by last use, oldest first: (app, key).
    order: BTreeMap<u64, (Arc<str>, Key)>,
    bytes: usize,
    tick: u64,
}

/// The node's Cache API storage.
pub struct Store {
    inner: Mutex<Inner>,
}

/// The process's store (configured by `configure` from the `cache` config section).
pub static STORE: LazyLock<Store> = LazyLock::new(|| {
    let defaults = nano_config::Cache::default();
    Store::new(mib(defaults.memory_mb), mib(defaults.app_quota_mb))
});

fn mib(megabytes: u32) -> usize {
    megabytes as usize * 1024 * 1024
}

/// Applies the `cache` config section (at start and on every reload): entries beyond new,
/// smaller bounds go at once.
pub fn configure(config: &nano_config::Cache) {
    STORE.set_limits(mib(config.memory_mb), mib(config.app_quota_mb));
}

/// Why `put` did not store a response (the JS promise still resolves: as on Workers, a response
/// the cache may not keep is silently not kept), or why it refused it (an error to the app).
#[derive(Debug, PartialEq, Eq)]
pub enum PutError {
    /// The headers say not to keep it, or it is already stale.
    NotStorable(&'static str),
    /// Larger than the app's whole quota: an error the app sees.
    TooLarge { size: usize, quota: usize },
}

/// What `match` found: a response to build in JS (`body` is `None` for 304 and 416).
#[derive(Debug, PartialEq, Eq)]
pub struct Hit {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
}

/// What the request to `match` asked for beyond its URL.
#[derive(Debug, Default)]
pub struct Conditions<'a> {
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub range: Option<&'a str>,
}

impl Store {
    pub fn new(node_bytes: usize, app_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                node_bytes,
                app_bytes,
                apps: HashMap::new(),
                order: BTreeMap::new(),
                bytes: 0,
                tick: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The lock guards plain maps; a panic while holding it leaves them consistent enough
        // to go on (at worst a byte count off), so a poisoned lock is taken over.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_limits(&self, node_bytes: usize, app_bytes: usize) {
        let mut inner = self.lock();
        inner.node_bytes = node_bytes;
        inner.app_bytes = app_bytes;
        let apps: Vec<Arc<str>> = inner.apps.keys().cloned().collect();
        for app in apps {
            inner.make_room(&app, 0);
        }
    }

    /// Stores `status`/`headers`/`body` for `url` in `app`'s cache `name`, if its headers allow.
    pub fn put(
        &self,
        app: &Arc<str>,
        name: &str,
        url: &str,
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Result<(), PutError> {
        let stored = SystemTime::now();
        let (ttl, headers) = storable(status, headers, stored)?;
        let key = (name.to_owned(), without_fragment(url).to_owned());
        let size = key.0.len()
            + key.1.len()
            + body.len()
            + headers
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>();
        let mut inner = self.lock();
        if size > inner.app_bytes {
            return Err(PutError::TooLarge {
                size,
                quota: inner.app_bytes,
            });
        }
        inner.remove(app, &key, None);
        if size > inner.node_bytes {
            // The node keeps no Cache API entries at all (cache.memory_mb: 0), or too few bytes.
            return Err(PutError::NotStorable(
                "larger than the node's cache.memory_mb",
            ));
        }
        inner.make_room(app, size);
        inner.tick += 1;
        let used = inner.tick;
        let entry = Entry {
            status,
            headers,
            body,
            stored,
            expires: Instant::now() + ttl,
            size,
            used,
        };
        inner.order.insert(used, (app.clone(), key.clone()));
        inner.bytes += size;
        let cache = inner.apps.entry(app.clone()).or_default();
        cache.order.insert(used, key.clone());
        cache.bytes += size;
        cache.entries.insert(key, entry);
        let bytes = cache.bytes;
        if crate::metrics::recording() {
            METRICS.cache_stores.with_label_values(&[app]).inc();
        }
        METRICS
            .cache_bytes
            .with_label_values(&[app])
            .set(bytes as i64);
        Ok(())
    }

    /// The response stored for `url` in `app`'s cache `name`, answered as `conditions` ask.
    pub fn lookup(
        &self,
        app: &Arc<str>,
        name: &str,
        url: &str,
        conditions: &Conditions,
    ) -> Option<Hit> {
        let key = (name.to_owned(), without_fragment(url).to_owned());
        let found = {
            let mut inner = self.lock();
            inner.touch(app, &key)
        };
        if crate::metrics::recording() {
            let counter = if found.is_some() {
                &METRICS.cache_hits
            } else {
                &METRICS.cache_misses
            };
            counter.with_label_values(&[app]).inc();
        }
        Some(answer(found?, conditions))
    }

    /// Removes the entry for `url` in `app`'s cache `name`; whether there was one.
    pub fn delete(&self, app: &Arc<str>, name: &str, url: &str) -> bool {
        let key = (name.to_owned(), without_fragment(url).to_owned());
        self.lock().remove(app, &key, None)
    }

    /// Drops every entry of `app` (the app was removed from the node).
    pub fn drop_app(&self, app: &str) {
        let mut inner = self.lock();
        if let Some(cache) = inner.apps.remove(app) {
            inner.bytes -= cache.bytes;
            for used in cache.order.keys() {
                inner.order.remove(used);
            }
        }
        let _ = METRICS.cache_bytes.remove_label_values(&[app]);
    }

    /// Bytes `app`'s entries count against its quota.
    pub fn app_bytes(&self, app: &str) -> usize {
        self.lock().apps.get(app).map_or(0, |c| c.bytes)
    }
}

impl Inner {
    /// Marks the entry used and copies out what `match` needs; drops it if it has expired.
    fn touch(&mut self, app: &Arc<str>, key: &Key) -> Option<Stored> {
        let now = Instant::now();
        let expired = self.apps.get(app)?.entries.get(key)?.expires <= now;
        if expired {
            self.remove(app, key, Some("expired"));
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let cache = self.apps.get_mut(app)?;
        let entry = cache.entries.get_mut(key)?;
        let old = std::mem::replace(&mut entry.used, tick);
        let found = Stored {
            status: entry.status,
            headers: entry.headers.clone(),
            body: entry.body.clone(),
            at: entry.stored,
        };
        cache.order.remove(&old);
        cache.order.insert(tick, key.clone());
        if let Some(place) = self.order.remove(&old) {
            self.order.insert(tick, place);
        }
        Some(found)
    }

    /// Removes one entry; `evicted` names why, for the metric, when it was not asked for.
    fn remove(&mut self, app: &Arc<str>, key: &Key, evicted: Option<&str>) -> bool {
        let Some(cache) = self.apps.get_mut(app) else {
            return false;
        };
        let Some(entry) = cache.entries.remove(key) else {
            return false;
        };
        cache.order.remove(&entry.used);
        cache.bytes -= entry.size;
        let bytes = cache.bytes;
        self.order.remove(&entry.used);
        self.bytes -= entry.size;
        if let Some(reason) = evicted {
            METRICS
                .cache_evictions
                .with_label_values(&[app, reason])
                .inc();
        }
        METRICS
            .cache_bytes
            .with_label_values(&[app])
            .set(bytes as i64);
        true
    }

    /// Evicts least recently used entries until `incoming` more bytes fit in `app`'s quota and
    /// in the node's cap.
    fn make_room(&mut self, app: &Arc<str>, incoming: usize) {
        loop {
            let over_quota = self
                .apps
                .get(app)
                .is_some_and(|c| c.bytes + incoming > self.app_bytes);
            let victim = if over_quota {
                self.apps[app]
                    .order
                    .first_key_value()
                    .map(|(_, key)| (app.clone(), key.clone(), "quota"))
            } else if self.bytes + incoming > self.node_bytes {
                self.order
                    .first_key_value()
                    .map(|(_, (app, key))| (app.clone(), key.clone(), "node_cap"))
            } else {
                None
            };
            let Some((app, key, reason)) = victim else {
                return;
            };
            self.remove(&app, &key, Some(reason));
        }
    }
}

/// A URL as a cache key: without its fragment.
fn without_fragment(url: &str) -> &str {
    url.split_once('#').map_or(url, |(before, _)| before)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One `Cache-Control` directive: its name (lower case) and its value, unquoted.
fn directives(value: &str) -> impl Iterator<Item = (String, Option<String>)> + '_ {
    value.split(',').filter_map(|part| {
        let part = part.trim();
        if part.is_empty() {
            return None;
        }
        let (name, value) = match part.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"').to_owned())),
            None => (part, None),
        };
        Some((name.to_ascii_lowercase(), value))
    })
}

/// The default edge TTL of a response without caching headers, by status (as Workers: 200, 206
/// and 301 for two hours, 302 and 303 for 20 minutes, 404 and 410 for 3 minutes, others not).
fn default_ttl(status: u16) -> Option<Duration> {
    match status {
        200 | 206 | 301 => Some(Duration::from_secs(120 * 60)),
        302 | 303 => Some(Duration::from_secs(20 * 60)),
        404 | 410 => Some(Duration::from_secs(3 * 60)),
        _ => None,
    }
}

/// How long a response may be kept, and the headers to keep with it; or why not at all.
fn storable(
    status: u16,
    mut headers: Vec<(String, String)>,
    now: SystemTime,
) -> Result<(Duration, Vec<(String, String)>), PutError> {
    let mut max_age = None;
    let mut s_maxage = None;
    let mut keep_cookie_out = false;
    let control: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
        .map(|(_, v)| v.clone())
        .collect();
    for value in &control {
        for (name, value) in directives(value) {
            let seconds = || value.as_deref().and_then(|v| v.parse::<u64>().ok());
            match name.as_str() {
                "no-store" => return Err(PutError::NotStorable("Cache-Control: no-store")),
                "private" | "no-cache" => match &value {
                    // `private=Set-Cookie`: keep the response, not its cookie.
                    Some(fields)
                        if fields
                            .split(',')
                            .any(|f| f.trim().eq_ignore_ascii_case("set-cookie")) =>
                    {
                        keep_cookie_out = true;
                    }
                    Some(_) => {}
                    None if name == "private" => {
                        return Err(PutError::NotStorable("Cache-Control: private"));
                    }
                    None => return Err(PutError::NotStorable("Cache-Control: no-cache")),
                },
                "max-age" => max_age = max_age.or(seconds()),
                "s-maxage" => s_maxage = s_maxage.or(seconds()),
                _ => {}
            }
        }
    }
    if keep_cookie_out {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("set-cookie"));
    } else if header(&headers, "set-cookie").is_some() {
        return Err(PutError::NotStorable("Set-Cookie"));
    }
    let ttl = if let Some(seconds) = s_maxage.or(max_age) {
        Duration::from_secs(seconds)
    } else if let Some(expires) = header(&headers, "expires") {
        // An unreadable date means already expired (RFC 9111, 5.3).
        let at = httpdate::parse_http_date(expires).unwrap_or(SystemTime::UNIX_EPOCH);
        // Relative to the response's own Date, when it has one.
        let date = header(&headers, "date")
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .unwrap_or(now);
        at.duration_since(date).unwrap_or(Duration::ZERO)
    } else {
        default_ttl(status).ok_or(PutError::NotStorable(
            "no Cache-Control or Expires, and the status has no default TTL",
        ))?
    };
    if ttl.is_zero() {
        return Err(PutError::NotStorable("already stale"));
    }
    Ok((ttl, headers))
}

/// The answer to `match` from a stored response: 304 for a satisfied condition, 206 or 416 for
/// a range, else the whole response. Each carries `CF-Cache-Status: HIT`.
fn answer(found: Stored, conditions: &Conditions) -> Hit {
    let Stored {
        status,
        mut headers,
        body,
        at: stored,
    } = found;
    headers.push(("cf-cache-status".into(), "HIT".into()));
    let age = SystemTime::now()
        .duration_since(stored)
        .unwrap_or_default()
        .as_secs();
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case("age"));
    headers.push(("age".into(), age.to_string()));
    if status == 200 && not_modified(&headers, stored, conditions) {
        // Only the headers RFC 9110 (15.4.5) has a 304 carry.
        headers.retain(|(n, _)| {
            [
                "cache-control",
                "content-location",
                "date",
                "etag",
                "expires",
                "vary",
                "last-modified",
                "cf-cache-status",
                "age",
            ]
            .iter()
            .any(|keep| n.eq_ignore_ascii_case(keep))
        });
        return Hit {
            status: 304,
            headers,
            body: None,
        };
    }
    if status == 200
        && let Some(range) = conditions.range
    {
        match byte_range(range, body.len()) {
            Some(Ok((start, end))) => {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
                headers.push((
                    "content-range".into(),
                    format!("bytes {start}-{end}/{}", body.len()),
                ));
                headers.push(("content-length".into(), (end + 1 - start).to_string()));
                return Hit {
                    status: 206,
                    headers,
                    body: Some(body.slice(start..=end)),
                };
            }
            Some(Err(())) => {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
                headers.push(("content-range".into(), format!("bytes */{}", body.len())));
                return Hit {
                    status: 416,
                    headers,
                    body: None,
                };
            }
            // Not one byte range (several, or another unit): the whole response.
            None => {}
        }
    }
    Hit {
        status,
        headers,
        body: Some(body),
    }
}

/// Whether the request's validators match the stored response (RFC 9110, 13.1.2-13.1.3):
/// `If-None-Match` against its `ETag` (weak comparison), else `If-Modified-Since` against its
/// `Last-Modified` (or when it was stored).
fn not_modified(headers: &[(String, String)], stored: SystemTime, conditions: &Conditions) -> bool {
    if let Some(wanted) = conditions.if_none_match {
        let Some(etag) = header(headers, "etag") else {
            return false;
        };
        let weak = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
        let etag = weak(etag);
        return wanted
            .split(',')
            .any(|tag| tag.trim() == "*" || weak(tag) == etag);
    }
    if let Some(since) = conditions.if_modified_since
        && let Ok(since) = httpdate::parse_http_date(since)
    {
        let modified = header(headers, "last-modified")
            .and_then(|m| httpdate::parse_http_date(m).ok())
            .unwrap_or(stored);
        return modified <= since;
    }
    false
}

/// A single `bytes=` range of a body of `len` bytes: `Some(Ok((first, last)))` (inclusive),
/// `Some(Err(()))` when it cannot be satisfied, `None` when the header is not one byte range.
fn byte_range(range: &str, len: usize) -> Option<Result<(usize, usize), ()>> {
    let spec = range.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<usize>().ok();
    if first.is_empty() {
        // The last N bytes.
        let suffix = parse(last)?;
        if suffix == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len.saturating_sub(suffix), len - 1)));
    }
    let first = parse(first)?;
    let last = if last.is_empty() {
        len.saturating_sub(1)
    } else {
        parse(last)?.min(len.saturating_sub(1))
    };
    if first >= len || last < first {
        return Some(Err(()));
    }
    Some(Ok((first, last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// Stores `bytes` bytes for `url` in `app`'s default cache, for a minute.
    fn put_for_a_minute(
        store: &Store,
        app: &Arc<str>,
        url: &str,
        bytes: usize,
    ) -> Result<(), PutError> {
        let headers = h(&[("cache-control", "max-age=60")]);
        store.put(app, "", url, 200, headers, Bytes::from(vec![b'x'; bytes]))
    }

    fn ttl(status: u16, pairs: &[(&str, &str)]) -> Result<u64, PutError> {
        storable(status, h(pairs), SystemTime::now()).map(|(ttl, _)| ttl.as_secs())
    }

    #[test]
    fn what_is_stored_and_for_how_long() {
        assert_eq!(ttl(200, &[("cache-control", "public, max-age=60")]), Ok(60));
        assert_eq!(
            ttl(200, &[("Cache-Control", "max-age=60, s-maxage=300")]),
            Ok(300)
        );
        assert_eq!(ttl(200, &[]), Ok(7200));
        assert_eq!(ttl(404, &[]), Ok(180));
        assert_eq!(ttl(302, &[]), Ok(1200));
        assert!(ttl(500, &[]).is_err());
        assert_eq!(ttl(500, &[("cache-control", "max-age=5")]), Ok(5));
        assert!(ttl(200, &[("cache-control", "no-store")]).is_err());
        assert!(ttl(200, &[("cache-control", "private")]).is_err());
        assert!(ttl(200, &[("cache-control", "no-cache")]).is_err());
        assert!(ttl(200, &[("cache-control", "max-age=0")]).is_err());
        assert!(ttl(200, &[("set-cookie", "a=b")]).is_err());
        let (_, kept) = storable(
            200,
            h(&[
                ("cache-control", "private=\"Set-Cookie\", max-age=9"),
                ("set-cookie", "a=b"),
            ]),
            SystemTime::now(),
        )
        .unwrap();
        assert!(header(&kept, "set-cookie").is_none());
        let now = SystemTime::now();
        let later = httpdate::fmt_http_date(now + Duration::from_secs(100));
        let date = httpdate::fmt_http_date(now);
        assert!(matches!(
            ttl(200, &[("expires", &later), ("date", &date)]),
            Ok(99..=100)
        ));
        assert!(ttl(200, &[("expires", "0")]).is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(byte_range("bytes=0-3", 10), Some(Ok((0, 3))));
        assert_eq!(byte_range("bytes=5-", 10), Some(Ok((5, 9))));
        assert_eq!(byte_range("bytes=-3", 10), Some(Ok((7, 9))));
        assert_eq!(byte_range("bytes=8-100", 10), Some(Ok((8, 9))));
        assert_eq!(byte_range("bytes=10-12", 10), Some(Err(())));
        assert_eq!(byte_range("bytes=0-1,3-4", 10), None);
        assert_eq!(byte_range("items=0-1", 10), None);
    }

    #[test]
    fn quotas_evict_the_least_recently_used_and_apps_are_apart() {
        let store = Store::new(10_000, 3_000);
        let (a, b): (Arc<str>, Arc<str>) = ("a.test".into(), "b.test".into());
        let put = |app: &Arc<str>, url: &str, n| put_for_a_minute(&store, app, url, n);
        let get = |app: &Arc<str>, url: &str| store.lookup(app, "", url, &Conditions::default());
        put(&a, "http://x/1", 1000).unwrap();
        put(&a, "http://x/2", 1000).unwrap();
        assert!(get(&b, "http://x/1").is_none(), "another app's entry");
        assert!(get(&a, "http://x/1").is_some());
        put(&a, "http://x/3", 1000).unwrap(); // over the quota: /2 (least recently used) goes
        assert!(get(&a, "http://x/2").is_none());
        assert!(get(&a, "http://x/1").is_some() && get(&a, "http://x/3").is_some());
        assert!(store.app_bytes("a.test") <= 3_000);
        assert_eq!(
            put(&a, "http://x/big", 5000),
            Err(PutError::TooLarge {
                size: 5000 + "http://x/big".len() + "cache-control".len() + 10,
                quota: 3000
            })
        );
        store.drop_app("a.test");
        assert_eq!(store.app_bytes("a.test"), 0);
        assert!(get(&a, "http://x/1").is_none());
    }

    #[test]
    fn the_node_cap_evicts_the_least_recently_used_of_any_app() {
        let store = Store::new(2_500, 2_000);
        let (a, b): (Arc<str>, Arc<str>) = ("a.test".into(), "b.test".into());
        let put = |app: &Arc<str>, url: &str| put_for_a_minute(&store, app, url, 1000);
        put(&a, "http://x/old").unwrap();
        put(&b, "http://x/b").unwrap();
        put(&a, "http://x/new").unwrap(); // 3 KB over a 2.5 KB cap: a's oldest goes
        let get = |app: &Arc<str>, url: &str| store.lookup(app, "", url, &Conditions::default());
        assert!(get(&a, "http://x/old").is_none());
        assert!(get(&b, "http://x/b").is_some() && get(&a, "http://x/new").is_some());
        // A cap of 0 keeps nothing.
        store.set_limits(0, 2_000);
        assert!(get(&b, "http://x/b").is_none());
        assert!(matches!(
            put(&a, "http://x/again"),
            Err(PutError::NotStorable(_))
        ));
    }

    #[test]
    fn conditional_and_range_answers() {
        let stored = SystemTime::now();
        let headers = h(&[("etag", "\"v1\""), ("content-length", "10")]);
        let body = Bytes::from_static(b"0123456789");
        let ask = |c: Conditions| {
            let found = Stored {
                status: 200,
                headers: headers.clone(),
                body: body.clone(),
                at: stored,
            };
            answer(found, &c)
        };
        let hit = ask(Conditions {
            if_none_match: Some("W/\"v1\""),
            ..Default::default()
        });
        assert_eq!((hit.status, hit.body.is_none()), (304, true));
        assert_eq!(
            ask(Conditions {
                if_none_match: Some("\"v2\""),
                ..Default::default()
            })
            .status,
            200
        );
        let part = ask(Conditions {
            range: Some("bytes=2-4"),
            ..Default::default()
        });
        assert_eq!(part.status, 206);
        assert_eq!(part.body.as_deref(), Some(&b"234"[..]));
        assert_eq!(header(&part.headers, "content-range"), Some("bytes 2-4/10"));
        assert_eq!(header(&part.headers, "content-length"), Some("3"));
        assert_eq!(
            ask(Conditions {
                range: Some("bytes=20-"),
                ..Default::default()
            })
            .status,
            416
        );
        let since = httpdate::fmt_http_date(stored + Duration::from_secs(5));
        assert_eq!(
            ask(Conditions {
                if_modified_since: Some(&since),
                ..Default::default()
            })
            .status,
            304
        );
    }
}
