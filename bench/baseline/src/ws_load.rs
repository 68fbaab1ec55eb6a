//! `ws-load ADDR HOST PATH CONNECTIONS SECONDS [MESSAGE_BYTES]`: WebSocket echo load. Opens
//! CONNECTIONS sockets to `ws://HOST PATH` on ADDR; each sends a text message, waits for the
//! echo, and sends the next, for SECONDS. Prints one JSON line: messages echoed per second and
//! the round trip's p50/p99 in microseconds (every connection's every round trip counted).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::client_async;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: ws-load ADDR HOST PATH CONNECTIONS SECONDS [MESSAGE_BYTES]");
        std::process::exit(64);
    }
    let (addr, host, path) = (args[1].clone(), args[2].clone(), args[3].clone());
    let connections: usize = args[4].parse().expect("CONNECTIONS: a number");
    let seconds: u64 = args[5].parse().expect("SECONDS: a number");
    let size: usize = args
        .get(6)
        .map_or(16, |s| s.parse().expect("MESSAGE_BYTES: a number"));
    let payload = "x".repeat(size);
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (addr, url, payload) = (addr.clone(), format!("ws://{host}{path}"), payload.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(&addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut ws, _) = client_async(url, stream).await.expect("upgrade");
            let mut rtts = Vec::new();
            while Instant::now() < until {
                let began = Instant::now();
                ws.send(Message::text(payload.clone())).await.expect("send");
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(_) | Message::Binary(_))) => break,
                        Some(Ok(_)) => continue,
                        other => panic!("the socket ended: {other:?}"),
                    }
                }
                rtts.push(began.elapsed().as_micros() as u64);
            }
            let _ = ws.close(None).await;
            rtts
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a connection task"));
    }
    let elapsed = started
        .elapsed()
        .as_secs_f64()
        .min(seconds as f64)
        .max(0.001);
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"messages\": {}, \"per_sec\": {:.0}, \"p50_us\": {}, \"p99_us\": {}}}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
}
