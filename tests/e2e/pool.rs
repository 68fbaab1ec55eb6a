//! Bounded queues: a full app refuses at once with 503 and Retry-After; other apps never notice.

use nano_tests::{Nano, block_on};
use serde_json::json;

#[test]
fn full_app_refuses_at_once_and_recovers() {
    let nano = Nano::start(json!({
        "apps": [
            { "hostname": "slow.example", "entrypoint": "slow/app.js",
              "limits": { "workers": 1, "queue_per_worker": 2, "timeout_secs": 120 } },
            { "hostname": "other.example", "entrypoint": "hello/app.js", "env": { "NAME": "other" } }
        ]
    }));
    block_on(async {
        // Two requests hold both slots far longer than the test needs (however slow the
        // machine); the test lets them go by hanging up.
        let held: Vec<_> = (0..2)
            .map(|_| {
                let addr = nano.addr;
                nano_tests::spawn_get(addr, "slow.example", "/?ms=100000")
            })
            .collect();
        // Both slots are taken once both handlers have started.
        nano.log.wait_for_count("holding for 100000 ms", 2);

        let refused = nano.get("slow.example", "/?ms=1").await;
        assert_eq!(refused.status, 503);
        assert_eq!(refused.header("x-nano-error"), Some("queue-full"));
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert!(
            refused.body.contains("all 2 request slots are taken"),
            "{}",
            refused.body
        );

        let other = nano.get("other.example", "/").await;
        assert_eq!(
            (other.status, other.body.as_str()),
            (200, "hello from other")
        );

        // Hanging up frees the slots: the app answers again.
        for task in held {
            task.abort();
        }
        let deadline = std::time::Instant::now() + nano_tests::PATIENCE;
        loop {
            let again = nano.get("slow.example", "/?ms=1").await;
            if again.status == 200 {
                assert_eq!(again.body, "held 1 ms");
                break;
            }
            assert_eq!(
                again.header("x-nano-error"),
                Some("queue-full"),
                "{}",
                again.body
            );
            assert!(
                std::time::Instant::now() < deadline,
                "the slots were never freed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn a_request_that_never_answers_gets_504_and_frees_its_slot() {
    let nano = Nano::start(json!({
        "apps": [{ "hostname": "slow.example", "entrypoint": "slow/app.js",
                   "limits": { "workers": 1, "queue_per_worker": 1, "timeout_secs": 1 } }]
    }));
    block_on(async {
        let reply = nano.get("slow.example", "/?ms=600000").await;
        assert_eq!(reply.status, 504);
        assert_eq!(reply.header("x-nano-error"), Some("timeout"));
        assert!(reply.body.contains("limit of 1 s"), "{}", reply.body);
        // The only slot is free again: the worker dropped the timed-out request.
        nano.log.wait_for("the worker's timeout line", |t| {
            t.contains("request terminated") && t.contains("limit=timeout")
        });
        let reply = nano.get("slow.example", "/?ms=1").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "held 1 ms"));
    });
}
