//! Graceful shutdown: SIGTERM stops accepting, lets in-flight requests finish, exits 0.

use nano_tests::{Nano, block_on, body, request};
use serde_json::json;

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let mut nano = Nano::start(json!({
        "server": { "shutdown_grace_secs": 30 },
        "apps": [{ "hostname": "slow.example", "entrypoint": "slow/app.js" }]
    }));
    let addr = nano.addr;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let in_flight = runtime.spawn(async move {
        let req = request("GET", "slow.example", "/?ms=1500")
            .body(body(""))
            .unwrap();
        nano_tests::send(addr, req).await
    });
    nano.log.wait_for_count("holding for 1500 ms", 1);
    let status = nano.terminate();
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        nano.log.text()
    );
    let reply = block_on(async {
        runtime
            .spawn(async { in_flight.await.unwrap() })
            .await
            .unwrap()
    });
    assert_eq!((reply.status, reply.body.as_str()), (200, "held 1500 ms"));
    let log = nano.log.text();
    assert!(
        log.contains("signal=SIGTERM") && log.contains("stopped"),
        "{log}"
    );
    // Nothing listens any more.
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the listener is closed"
    );
}
