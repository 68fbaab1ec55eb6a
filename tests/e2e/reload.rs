//! Hot reload: file changes and SIGHUP swap versions with no failed request; an invalid config
//! or a broken new version leaves the previous one serving; apps come and go; unchanged apps
//! keep their warm isolates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use nano_tests::{Nano, PATIENCE, block_on, fixtures};
use serde_json::{Value, json};

struct Site {
    nano: Nano,
    config: PathBuf,
    root: PathBuf,
}

/// A config with apps `a` (versioned, in root/a) and `b` (hello), written to a temporary folder.
fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::copy(fixtures().join("versioned/app.js"), root.join("a/app.js")).unwrap();
    write_version(&root, "v0");
    let config = root.join("nano.json");
    write_config(&config, &apps(&root, &["a", "b"]));
    let nano = Nano::start_file(&config, dir);
    Site { nano, config, root }
}

fn apps(root: &Path, names: &[&str]) -> Value {
    let apps: Vec<Value> = names
        .iter()
        .map(|name| match *name {
            "a" => json!({ "hostname": "a.example", "entrypoint": root.join("a/app.js"), "limits": { "workers": 2 },
                           "fetch": { "allow_private_networks": true } }),
            other => json!({ "hostname": format!("{other}.example"), "entrypoint": fixtures().join("hello/app.js"),
                             "env": { "NAME": other }, "limits": { "workers": 1 } }),
        })
        .collect();
    Value::Array(apps)
}

fn write_config(path: &Path, apps: &Value) {
    let text = json!({ "server": { "host": "127.0.0.1", "port": 0 }, "apps": apps }).to_string();
    write_atomically(path, &text);
}

fn write_version(root: &Path, version: &str) {
    write_atomically(
        &root.join("a/version.js"),
        &format!("export const VERSION = {version:?};\n"),
    );
}

/// Write-then-rename, as editors and deploy tools do.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

async fn wait_for_body(nano: &Nano, host: &str, want: &str) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let reply = nano.get(host, "/").await;
        if reply.status == 200 && reply.body == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{host} never answered {want:?}; last {reply:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[test]
fn five_reloads_under_steady_traffic_fail_no_request() {
    let site = site();
    block_on(async {
        wait_for_body(&site.nano, "a.example", "v0").await;
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let (addr, stop, answered) = (site.nano.addr, stop.clone(), answered.clone());
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let req = nano_tests::request("GET", "a.example", "/")
                            .body(nano_tests::body(""))
                            .unwrap();
                        let reply = nano_tests::send(addr, req).await;
                        seen.push((reply.status, reply.body));
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    seen
                })
            })
            .collect();
        // Traffic flows around every swap: each version is written only once the clients have
        // had answers since the last one, however slow the machine.
        let traffic = |since: usize| {
            let answered = answered.clone();
            async move {
                let deadline = std::time::Instant::now() + PATIENCE;
                while answered.load(Ordering::Relaxed) < since + 8 {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the clients got no answers"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        };
        for version in 1..=5 {
            traffic(answered.load(Ordering::Relaxed)).await;
            let want = format!("v{version}");
            write_version(&site.root, &want);
            wait_for_body(&site.nano, "a.example", &want).await;
        }
        traffic(answered.load(Ordering::Relaxed)).await;
        stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        for client in clients {
            for (status, body) in client.await.unwrap() {
                total += 1;
                assert_eq!(status, 200, "a request failed during a reload: {body}");
                assert!(body.len() == 2 && body.starts_with('v'), "{body}");
            }
        }
        assert!(total >= 48, "{total} requests");
    });
    site.nano.log.wait_for("five reloads", |t| {
        t.matches("config reloaded").count() >= 5
    });
}

#[test]
fn invalid_config_or_broken_version_keeps_the_previous_one_serving() {
    let site = site();
    block_on(async {
        wait_for_body(&site.nano, "a.example", "v0").await;
        std::fs::write(&site.config, "{ \"apps\": [ { \"hostname\": ").unwrap();
        site.nano
            .log
            .wait_for("the rejection", |t| t.contains("config reload rejected"));
        wait_for_body(&site.nano, "a.example", "v0").await;

        write_config(
            &site.config,
            &json!([{ "hostname": "a.example", "entrypoint": site.root.join("a/app.js"),
                                             "limits": { "workerz": 2 } }]),
        );
        // The rejection names the JSON path and the unknown key.
        site.nano.log.wait_for("the second rejection", |t| {
            t.lines().any(|l| {
                l.contains("config reload rejected") && l.contains("apps[0].limits: unknown key")
            })
        });
        wait_for_body(&site.nano, "b.example", "hello from b").await;

        // A new version that does not load: the old one keeps answering.
        write_config(&site.config, &apps(&site.root, &["a", "b"]));
        write_atomically(&site.root.join("a/version.js"), "export const VERSION = ;");
        site.nano.log.wait_for("the kept version", |t| {
            t.contains("the previous version keeps serving")
        });
        wait_for_body(&site.nano, "a.example", "v0").await;
    });
}

#[test]
fn apps_are_added_and_removed_and_unchanged_ones_stay_warm() {
    let site = site();
    block_on(async {
        wait_for_body(&site.nano, "b.example", "hello from b").await;
        let isolate_of_b = |isolates: Value| {
            isolates["isolates"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["hostname"] == "b.example")
                .cloned()
                .unwrap()
        };
        let before = isolate_of_b(site.nano.get("127.0.0.1", "/_admin/isolates").await.json());

        write_config(&site.config, &apps(&site.root, &["b", "c"]));
        wait_for_body(&site.nano, "c.example", "hello from c").await;
        let gone = site.nano.get("a.example", "/").await;
        assert_eq!(gone.status, 404, "a.example was removed");

        let after = isolate_of_b(site.nano.get("127.0.0.1", "/_admin/isolates").await.json());
        assert_eq!(before["isolate"], after["isolate"], "b kept its isolate");
        assert_eq!(before["created_at_ms"], after["created_at_ms"]);
        assert!(after["requests_served"].as_u64() >= before["requests_served"].as_u64());
    });
    site.nano.log.wait_for("the added and removed apps", |t| {
        t.contains("added=[\"c.example\"]") && t.contains("removed=[\"a.example\"]")
    });
}

#[test]
fn sighup_reloads() {
    let site = site();
    // A change the file watch cannot see: `a/version.js` rewritten in place through a hard link
    // in an unwatched folder (inotify reports a write to the folder it went through). Only a
    // SIGHUP can make the node read it.
    let elsewhere = site.root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::hard_link(site.root.join("a/version.js"), elsewhere.join("version.js")).unwrap();
    block_on(async {
        wait_for_body(&site.nano, "a.example", "v0").await;
        std::fs::write(
            elsewhere.join("version.js"),
            "export const VERSION = \"v1\";\n",
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(site.root.join("a/version.js")).unwrap(),
            "export const VERSION = \"v1\";\n",
            "the link is one file"
        );
        site.nano.signal(libc::SIGHUP);
        site.nano.log.wait_for("the SIGHUP reload", |t| {
            t.contains("trigger=SIGHUP") && t.contains("config reloaded")
        });
        wait_for_body(&site.nano, "a.example", "v1").await;
    });
    let log = site.nano.log.text();
    assert!(
        !log.contains("trigger=file change"),
        "the watch saw the change, so this test does not show what SIGHUP does: {log}"
    );
}

/// A request in flight when its app is reloaded finishes on the version it started on, while new
/// requests already get the new one. It is held by a subrequest to an upstream the test
/// releases only after the new version answers.
#[test]
fn a_request_in_flight_finishes_on_the_old_version() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let site = site();
    block_on(async {
        wait_for_body(&site.nano, "a.example", "v0").await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let req =
                nano_tests::request("GET", "a.example", &format!("/?hold=http://{upstream}/"))
                    .body(nano_tests::body(""))
                    .unwrap();
            nano_tests::send(site.nano.addr, req).await
        });
        let (mut stream, _) = tokio::time::timeout(PATIENCE, listener.accept())
            .await
            .expect("the subrequest arrived")
            .unwrap();
        let mut buf = [0; 1024];
        let _ = stream.read(&mut buf).await.unwrap();

        write_version(&site.root, "v1");
        wait_for_body(&site.nano, "a.example", "v1").await;

        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        let reply = tokio::time::timeout(PATIENCE, held).await.unwrap().unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, "v0"));
    });
}

/// An upgrade in place (the binary at the node's path replaced while the node runs) does not
/// reach the running node: it prepares its apps with its own build (`/proc/self/exe`). The "new
/// build" here is a script whose `prepare-app` succeeds with a snapshot that is not one: before,
/// the node ran it and loaded that, as it would have loaded a real new build's snapshot, whose
/// sources and native callbacks V8 then looks for at this build's addresses (seen: every request
/// of an app failing on a "source" read from the binary's other strings).
#[test]
fn a_binary_replaced_in_place_does_not_prepare_the_running_nodes_apps() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let exe = root.join("bin/nano");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(nano_tests::binary("nano"), &exe).unwrap();
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::copy(fixtures().join("versioned/app.js"), root.join("a/app.js")).unwrap();
    write_version(&root, "v0");
    let config = root.join("nano.json");
    write_config(&config, &apps(&root, &["a"]));
    let nano = Nano::start_exe(&exe, &config, dir);
    block_on(async {
        wait_for_body(&nano, "a.example", "v0").await;
        std::fs::remove_file(&exe).unwrap();
        std::fs::write(&exe, ANOTHER_BUILD).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        write_version(&root, "v1");
        wait_for_body(&nano, "a.example", "v1").await;
    });
    assert!(
        !nano.log.text().contains("another build"),
        "the node ran the replaced binary:\n{}",
        nano.log.text()
    );
}

/// `nano prepare-app` of a build that is not the node's.
const ANOTHER_BUILD: &str = r#"#!/bin/sh
while [ $# -gt 0 ]; do
  if [ "$1" = --out ]; then printf 'not a snapshot' > "$2"; fi
  shift
done
echo '{"handler":"module","files":[],"runtime":"another build"}'
"#;
