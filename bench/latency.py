#!/usr/bin/env python3
"""Latency of one request to an app that is not under load: requests spaced --gap-ms apart on
one keep-alive connection, so every request finds its worker idle (the common case at the edge:
most apps see a request now and then, not a stream). Compares context reset on against reset
off, same binary, same run: the difference is what a fresh context costs a request.

With --burst N: instead, N requests at once (N connections opened beforehand, released
together) to the idle app, --requests times with --gap-ms between bursts, so every burst finds
the worker idle with its spare contexts made (up to two). Each request's latency counts.

Usage: bench/latency.py [--requests N] [--gap-ms MS] [--burst N] [--nano PATH] [--app module.js]
"""

import argparse
import http.client
import json
import pathlib
import subprocess
import tempfile
import threading
import time

from common import body, free_port, pct, wait

ROOT = pathlib.Path(__file__).resolve().parent.parent
HELLO = ROOT / "bench" / "apps" / "hello.js"


def timed_get(conn):
    began = time.perf_counter()
    conn.request("GET", "/", headers={"Host": "bench.local"})
    response = conn.getresponse()
    response.read()
    assert response.status == 200, response.status
    return (time.perf_counter() - began) * 1e6


def bursts(port, requests, gap, size):
    """Latencies of `requests` bursts of `size` simultaneous requests, `gap` ms apart."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(size)]
    times = []
    for round_ in range(requests + 5):
        start = threading.Barrier(size)
        results = [None] * size

        def one(i):
            start.wait()
            results[i] = timed_get(conns[i])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if round_ >= 5:  # warm-up
            times.extend(results)
        time.sleep(gap / 1000)
    return times


def measure(nano, app, reset, requests, gap, burst=0):
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        config = pathlib.Path(work) / "nano.json"
        config.write_text(json.dumps({
            "server": {"host": "127.0.0.1", "port": port},
            "apps": [{"hostname": "bench.local", "entrypoint": str(app),
                      "context_reset": reset, "limits": {"workers": 1}}],
        }))
        proc = subprocess.Popen([nano, "--config", config], stderr=subprocess.DEVNULL,
                                env={"NANO_LOG": "warn", "PATH": "/usr/bin:/bin"})
        try:
            wait(lambda: body(port, "bench.local") is not None, "nano to answer")
            if burst:
                return bursts(port, requests, gap, burst)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            times = []
            for i in range(requests + 50):
                elapsed = timed_get(conn)
                if i >= 50:  # warm-up
                    times.append(elapsed)
                time.sleep(gap / 1000)
            return times
        finally:
            proc.terminate()
            proc.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--gap-ms", type=float, default=5)
    parser.add_argument("--burst", type=int, default=0)
    parser.add_argument("--nano", type=pathlib.Path, default=ROOT / "target" / "release" / "nano")
    parser.add_argument("--app", type=pathlib.Path, default=HELLO)
    args = parser.parse_args()
    rows = {}
    for reset in (False, True):
        rows[reset] = measure(args.nano, args.app.resolve(), reset, args.requests, args.gap_ms,
                             args.burst)
    base = pct(rows[False], 50)
    print("| context reset | p50 µs | p90 µs | p99 µs | p50 minus reset off |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for reset in (False, True):
        p50 = pct(rows[reset], 50)
        print(f"| {'on' if reset else 'off'} | {p50:.0f} | {pct(rows[reset], 90):.0f} "
              f"| {pct(rows[reset], 99):.0f} | {p50 - base:.0f} |")


if __name__ == "__main__":
    main()
