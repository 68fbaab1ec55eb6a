#!/usr/bin/env python3
"""WebSocket echo: messages per second and round-trip p99, NANO against `deno serve` (and
workerd) in the same run.

Each server runs the echo of bench/apps (NANO and workerd: ws-echo.js with WebSocketPair;
deno: ws-echo-deno.js with Deno.upgradeWebSocket, `--parallel`). `ws-load` (bench/baseline)
opens --connections sockets; each sends a --bytes text message, waits for the echo and sends the
next, for --seconds. The servers take turns, --rounds times; the table gives medians and the
ratio to deno.

Usage: bench/websocket.py [--connections 32] [--seconds 5] [--rounds 3] [--bytes 16] [--nano PATH]
Needs the release builds (cargo build --release -p nano-dataplane -p nano-bench-baseline) and
npm install in bench/ (workerd, deno).
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import tempfile

from common import ROOT, free_port, wait
import socket


def listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def servers(args, work):
    """(name, command, port, host) of each server to measure."""
    echo = ROOT / "bench" / "apps" / "ws-echo.js"
    for reset in (False, True):
        port = free_port()
        config = work / f"nano-{reset}.json"
        config.write_text(json.dumps({
            "server": {"host": "127.0.0.1", "port": port},
            "slivers": {"cache_dir": str(work / "snap")},
            "apps": [{"hostname": "ws.local", "entrypoint": str(echo), "context_reset": reset,
                      "limits": {"workers": 2}, "websockets": {"max_sockets": 10000}}],
        }))
        yield (f"NANO, `context_reset: {str(reset).lower()}`", [args.nano, "--config", str(config)], port, "ws.local")
    port = free_port()
    capnp = work / "workerd.capnp"
    # workerd embeds files relative to its config.
    (work / "ws-echo.js").write_text(echo.read_text())
    capnp.write_text(f'''using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .w)],
  sockets = [(name = "http", address = "127.0.0.1:{port}", http = (), service = "main")],
);
const w :Workerd.Worker = (modules = [(name = "app.js", esModule = embed "ws-echo.js")], compatibilityDate = "2026-11-01");
''')
    yield ("workerd", [str(ROOT / "bench" / "node_modules" / ".bin" / "workerd"), "serve", str(capnp)], port, "ws.local")
    port = free_port()
    yield ("deno serve --parallel", [str(ROOT / "bench" / "node_modules" / ".bin" / "deno"), "serve", "--quiet", "--parallel",
                                      "--port", str(port), "--host", "127.0.0.1", str(ROOT / "bench" / "apps" / "ws-echo-deno.js")], port, "ws.local")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nano", default=str(ROOT / "target" / "release" / "nano"))
    parser.add_argument("--load", default=str(ROOT / "target" / "release" / "ws-load"))
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bytes", type=int, default=16)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        plan = list(servers(args, work))
        for _ in range(args.rounds):
            for name, command, port, host in plan:
                proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        env={"NANO_LOG": "warn", "PATH": "/usr/bin:/bin", "DENO_NO_UPDATE_CHECK": "1"})
                try:
                    wait(lambda: listening(port), name, limit=60)
                    out = subprocess.run([args.load, f"127.0.0.1:{port}", host, "/", str(args.connections),
                                          str(args.seconds), str(args.bytes)],
                                         capture_output=True, text=True, check=True).stdout
                    results.setdefault(name, []).append(json.loads(out))
                finally:
                    proc.terminate()
                    proc.wait()
    deno = statistics.median(r["per_sec"] for r in results["deno serve --parallel"])
    print("| server | messages/s (median) | vs deno | p50 µs | p99 µs | rounds (messages/s) |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, rounds in results.items():
        rate = statistics.median(r["per_sec"] for r in rounds)
        p50 = statistics.median(r["p50_us"] for r in rounds)
        p99 = statistics.median(r["p99_us"] for r in rounds)
        print(f"| {name} | {rate:.0f} | {rate / deno:.2f} | {p50:.0f} | {p99:.0f} "
              f"| {', '.join(format(r['per_sec'], '.0f') for r in rounds)} |")


if __name__ == "__main__":
    main()
