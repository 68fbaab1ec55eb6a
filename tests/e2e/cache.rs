//! The Cache API (issue 15): what `put` keeps and for how long, conditional and range answers,
//! the per-app quota, isolation between apps, entries outliving isolates and going with their
//! app, the metrics; and the API's answers to wrong calls, which are workerd's (npm `workerd`
//! 1.20261117.1, compatibilityDate "2026-11-01", same fixture: tests/fixtures/cache/app.js).

use std::path::Path;

use nano_tests::{Nano, Reply, block_on, eventually, fixtures, request, sample};
use serde_json::{Value, json};

fn app(hostname: &str) -> Value {
    json!({ "hostname": hostname, "entrypoint": "cache/app.js", "limits": { "workers": 1 } })
}

async fn get(nano: &Nano, host: &str, path: &str) -> Reply {
    nano.get(host, path).await
}

/// `/get?key=` with extra request headers.
async fn get_with(nano: &Nano, host: &str, key: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = request("GET", host, &format!("/get?key={key}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    nano.send(builder.body(Default::default()).unwrap()).await
}

async fn put(nano: &Nano, host: &str, query: &str) {
    let reply = get(nano, host, &format!("/put?{query}")).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "put"), "{query}");
}

async fn metrics(nano: &Nano) -> String {
    get(nano, "127.0.0.1", "/_admin/metrics").await.body
}

#[test]
fn put_keeps_what_the_headers_allow_for_as_long_as_they_say() {
    let nano = Nano::start(json!({ "apps": [app("a.test")] }));
    block_on(async {
        assert_eq!(
            get(&nano, "a.test", "/get?key=k").await.status,
            404,
            "empty"
        );
        put(&nano, "a.test", "key=k&cc=max-age%3D600&body=hello").await;
        let hit = get(&nano, "a.test", "/get?key=k").await.json();
        assert_eq!(hit["status"], 200);
        assert_eq!(hit["body"], "hello");
        assert_eq!(hit["headers"]["cf-cache-status"], "HIT");
        assert_eq!(hit["headers"]["cache-control"], "max-age=600");

        // A caches.open() cache is another namespace.
        assert_eq!(
            get(&nano, "a.test", "/get?key=k&cache=other").await.status,
            404
        );
        put(
            &nano,
            "a.test",
            "key=k&cc=max-age%3D600&body=other&cache=other",
        )
        .await;
        assert_eq!(
            get(&nano, "a.test", "/get?key=k&cache=other").await.json()["body"],
            "other"
        );
        assert_eq!(
            get(&nano, "a.test", "/get?key=k").await.json()["body"],
            "hello"
        );

        // Not kept: no-store, private, no-cache, Set-Cookie, a status with no default TTL.
        for (key, query) in [
            ("nostore", "cc=no-store"),
            ("private", "cc=private"),
            ("nocache", "cc=no-cache"),
            ("cookie", "cookie=session%3D1"),
            ("status500", "status=500"),
        ] {
            put(&nano, "a.test", &format!("key={key}&{query}")).await;
            let reply = get(&nano, "a.test", &format!("/get?key={key}")).await;
            assert_eq!(
                reply.status, 404,
                "{query} must not be stored: {}",
                reply.body
            );
        }
        // private=Set-Cookie: kept, without the cookie. No caching headers at all on a 200:
        // the default edge TTL (two hours).
        put(
            &nano,
            "a.test",
            "key=cookie2&cookie=session%3D1&cc=private%3DSet-Cookie",
        )
        .await;
        let kept = get(&nano, "a.test", "/get?key=cookie2").await.json();
        assert_eq!(kept["status"], 200);
        assert!(kept["headers"].get("set-cookie").is_none(), "{kept}");
        put(&nano, "a.test", "key=plain").await;
        assert_eq!(get(&nano, "a.test", "/get?key=plain").await.status, 200);

        // delete answers whether there was an entry.
        assert_eq!(get(&nano, "a.test", "/delete?key=plain").await.body, "true");
        assert_eq!(
            get(&nano, "a.test", "/delete?key=plain").await.body,
            "false"
        );
        assert_eq!(get(&nano, "a.test", "/get?key=plain").await.status, 404);

        // max-age=1: a hit now, a miss once it is stale.
        put(&nano, "a.test", "key=short&cc=max-age%3D1").await;
        assert_eq!(get(&nano, "a.test", "/get?key=short").await.status, 200);
        eventually("the max-age=1 entry expiring", || async {
            let reply = get(&nano, "a.test", "/get?key=short").await;
            (reply.status == 404).then_some(()).ok_or(reply.body)
        })
        .await;
        let text = metrics(&nano).await;
        let expired = sample(
            &text,
            r#"nano_cache_evictions_total{hostname="a.test",reason="expired"}"#,
        );
        assert_eq!(expired, Some(1.0), "{text}");
        assert!(sample(&text, r#"nano_cache_hits_total{hostname="a.test"}"#) >= Some(6.0));
        assert!(sample(&text, r#"nano_cache_misses_total{hostname="a.test"}"#) >= Some(8.0));
        assert_eq!(
            sample(&text, r#"nano_cache_stores_total{hostname="a.test"}"#),
            Some(5.0)
        );
        nano_tests::check_with_promtool(&text);
    });
}

#[test]
fn match_answers_conditional_and_range_requests_from_the_stored_body() {
    let nano = Nano::start(json!({ "apps": [app("a.test")] }));
    block_on(async {
        put(
            &nano,
            "a.test",
            "key=doc&cc=max-age%3D600&etag=%22v1%22&last-modified=Mon,%2002%20Nov%202026%2010:00:00%20GMT&body=0123456789",
        )
        .await;
        let answer = |reply: Reply| {
            assert_eq!(reply.status, 200, "{}", reply.body);
            reply.json()
        };
        let fresh = answer(get_with(&nano, "a.test", "doc", &[("if-none-match", "\"v1\"")]).await);
        assert_eq!(
            (fresh["status"].clone(), fresh["body"].clone()),
            (json!(304), json!(""))
        );
        assert_eq!(fresh["headers"]["etag"], "\"v1\"");
        let changed =
            answer(get_with(&nano, "a.test", "doc", &[("if-none-match", "\"v2\"")]).await);
        assert_eq!(changed["status"], 200);
        let since = answer(
            get_with(
                &nano,
                "a.test",
                "doc",
                &[("if-modified-since", "Tue, 03 Nov 2026 10:00:00 GMT")],
            )
            .await,
        );
        assert_eq!(since["status"], 304);
        let before = answer(
            get_with(
                &nano,
                "a.test",
                "doc",
                &[("if-modified-since", "Sun, 01 Nov 2026 10:00:00 GMT")],
            )
            .await,
        );
        assert_eq!(before["status"], 200);

        let part = answer(get_with(&nano, "a.test", "doc", &[("range", "bytes=2-4")]).await);
        assert_eq!(part["status"], 206);
        assert_eq!(part["body"], "234");
        assert_eq!(part["headers"]["content-range"], "bytes 2-4/10");
        let tail = answer(get_with(&nano, "a.test", "doc", &[("range", "bytes=-3")]).await);
        assert_eq!(
            (tail["status"].clone(), tail["body"].clone()),
            (json!(206), json!("789"))
        );
        let beyond = answer(get_with(&nano, "a.test", "doc", &[("range", "bytes=50-")]).await);
        assert_eq!(beyond["status"], 416);
        assert_eq!(beyond["headers"]["content-range"], "bytes */10");
    });
}

#[test]
fn each_app_has_its_own_entries_within_its_quota() {
    let nano = Nano::start(json!({
        "apps": [app("a.test"), app("b.test")],
        "cache": { "memory_mb": 64, "app_quota_mb": 1 }
    }));
    block_on(async {
        // The same URL in two apps: neither sees the other's entry.
        put(&nano, "a.test", "key=same&cc=max-age%3D600&body=from-a").await;
        assert_eq!(get(&nano, "b.test", "/get?key=same").await.status, 404);
        put(&nano, "b.test", "key=same&cc=max-age%3D600&body=from-b").await;
        assert_eq!(
            get(&nano, "a.test", "/get?key=same").await.json()["body"],
            "from-a"
        );
        assert_eq!(
            get(&nano, "b.test", "/get?key=same").await.json()["body"],
            "from-b"
        );

        // Three 400 KB entries in a 1 MiB quota: the least recently used one goes.
        for key in ["one", "two"] {
            put(
                &nano,
                "a.test",
                &format!("key={key}&cc=max-age%3D600&bytes=400000"),
            )
            .await;
        }
        assert_eq!(
            get(&nano, "a.test", "/get?key=one").await.status,
            200,
            "touch one"
        );
        put(&nano, "a.test", "key=three&cc=max-age%3D600&bytes=400000").await;
        assert_eq!(
            get(&nano, "a.test", "/get?key=two").await.status,
            404,
            "two was LRU"
        );
        for key in ["one", "three"] {
            assert_eq!(
                get(&nano, "a.test", &format!("/get?key={key}"))
                    .await
                    .status,
                200
            );
        }
        // The other app lost nothing.
        assert_eq!(get(&nano, "b.test", "/get?key=same").await.status, 200);
        let text = metrics(&nano).await;
        assert!(
            sample(
                &text,
                r#"nano_cache_evictions_total{hostname="a.test",reason="quota"}"#
            ) >= Some(1.0),
            "{text}"
        );
        let bytes = sample(&text, r#"nano_cache_bytes{hostname="a.test"}"#).unwrap();
        assert!(bytes <= 1024.0 * 1024.0, "{bytes}");

        // A response larger than the whole quota is refused, saying why and what to do.
        let refused = get(
            &nano,
            "a.test",
            "/put?key=huge&cc=max-age%3D600&bytes=2000000",
        )
        .await;
        assert_eq!(refused.status, 500);
        assert!(
            refused
                .body
                .starts_with("Error: Cache.put: the response takes")
                && refused.body.contains("cache.app_quota_mb"),
            "{}",
            refused.body
        );
    });
}

fn write_config(path: &Path, apps: &[Value]) {
    let entry = fixtures().join("cache/app.js");
    let apps: Vec<Value> = apps
        .iter()
        .map(|a| {
            let mut a = a.clone();
            a["entrypoint"] = entry.to_string_lossy().into_owned().into();
            a
        })
        .collect();
    let text = json!({ "server": { "host": "127.0.0.1", "port": 0 }, "apps": apps }).to_string();
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[test]
fn entries_outlive_their_isolate_and_go_with_their_app() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nano.json");
    let reaped_quickly = json!({ "hostname": "a.test", "entrypoint": "",
                                 "limits": { "workers": 1, "idle_timeout_secs": 1 } });
    write_config(&config, &[reaped_quickly.clone(), app("b.test")]);
    let nano = Nano::start_file(&config, dir);
    block_on(async {
        put(&nano, "a.test", "key=k&cc=max-age%3D600&body=kept").await;
        // The worker ends after a second without requests; its entries stay.
        eventually("a.test's worker reaped", || async {
            let isolates = nano.isolates().await;
            let reaped = isolates
                .iter()
                .any(|i| i["hostname"] == "a.test" && i["state"] == "reaped");
            reaped.then_some(()).ok_or(format!("{isolates:?}"))
        })
        .await;
        assert_eq!(
            get(&nano, "a.test", "/get?key=k").await.json()["body"],
            "kept"
        );

        // Removed from the config: its entries go; added back, it starts empty.
        write_config(&config, &[app("b.test")]);
        eventually("a.test removed", || async {
            let reply = get(&nano, "a.test", "/get?key=k").await;
            let removed = nano.log.text().contains("removed=[\"a.test\"]");
            (reply.status == 404 && removed)
                .then_some(())
                .ok_or(reply.body)
        })
        .await;
        assert!(
            !metrics(&nano)
                .await
                .contains(r#"nano_cache_bytes{hostname="a.test"}"#)
        );
        write_config(&config, &[reaped_quickly, app("b.test")]);
        eventually("a.test back, with no entries", || async {
            let reply = get(&nano, "a.test", "/get?key=k").await;
            (reply.body == "miss").then_some(()).ok_or(reply.body)
        })
        .await;
    });
}

#[test]
fn the_api_answers_wrong_calls_as_workerd() {
    let nano = Nano::start(json!({ "apps": [app("a.test")] }));
    let got = block_on(get(&nano, "a.test", "/api")).json();
    let workerd = json!({
        "typeof caches": "object",
        "default is Cache": true,
        "default identity": true,
        "open is Cache": true,
        "put POST": "TypeError: Cannot cache response to non-GET request.",
        "put 206": "TypeError: Cannot cache response to a range request (206 Partial Content).",
        "put vary*": "TypeError: Cannot cache response with 'Vary: *' header.",
        "put 304": "undefined",
        "put used body": "TypeError: Body has already been used. It can only be used once. Use tee() first if you need to read it twice.",
        "put no response": "TypeError: Failed to execute 'put' on 'Cache': parameter 2 is not of type 'Response'.",
        "put string response": "TypeError: Failed to execute 'put' on 'Cache': parameter 2 is not of type 'Response'.",
        "match POST": "undefined",
        "delete POST": false,
        "match no argument": "TypeError: Failed to execute 'match' on 'Cache': parameter 1 is not of type 'Request or string'.",
        "open no argument": "TypeError: Failed to execute 'open' on 'CacheStorage': parameter 1 is not of type 'string'.",
        "add": "Error: Failed to execute 'add' on 'Cache': the method is not implemented.",
        "keys": "Error: Failed to execute 'keys' on 'Cache': the method is not implemented.",
        "matchAll": "Error: Failed to execute 'matchAll' on 'Cache': the method is not implemented.",
        "caches.has": "Error: Failed to execute 'has' on 'CacheStorage': the method is not implemented.",
        "caches.delete": "Error: Failed to execute 'delete' on 'CacheStorage': the method is not implemented.",
        "new Cache": "TypeError: Illegal constructor",
        "new CacheStorage": "TypeError: Illegal constructor",
        "Cache tag": "[object Cache]",
        "CacheStorage tag": "[object CacheStorage]"
    });
    for (key, want) in workerd.as_object().unwrap() {
        assert_eq!(got.get(key), Some(want), "{key} differs from workerd");
    }
}
