#!/usr/bin/env python3
"""Limits and metrics benchmarks, each against a baseline measured in the same run.

  precision   100 `while(true){}` requests at cpu_ms 50: time from request to the 503 (p50/p99);
              with --baseline NANO, the same against that binary too, in alternating rounds
  neighbour   hello-app throughput and p99 alone, then while another app receives a steady
              stream of CPU-bomb requests (2 workers per app, 2 cores)
  metrics     hello-app throughput with metrics recording on vs off (admin.metrics)

Usage: bench/limits.py [precision|neighbour|metrics|all] [--duration SECS]
Prints markdown; bench/RESULTS.md records the figures with the command.
"""

import argparse
import json
import os
import pathlib
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import common

ROOT = pathlib.Path(__file__).resolve().parent.parent
NANO = ROOT / "target" / "release" / "nano"
FIXTURES = ROOT / "tests" / "fixtures"
HELLO = ROOT / "bench" / "apps" / "hello.js"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nano:
    def __init__(self, apps, binary=None, **top):
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory()
        config = {"server": {"host": "127.0.0.1", "port": self.port}, "apps": apps, **top}
        path = pathlib.Path(self.dir.name) / "config.json"
        path.write_text(json.dumps(config))
        env = dict(os.environ, NANO_LOG="warn")
        self.proc = subprocess.Popen([binary or NANO, "--config", path], env=env,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if get(self.port, "127.0.0.1", "/_admin/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("nano did not become ready")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.dir.cleanup()


def get(port, host, path):
    return common.get(port, host, path, timeout=60)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def wrk(port, host, duration, connections=32):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-H", f"Host: {host}",
         f"http://127.0.0.1:{port}/"],
        check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1, "s": 1000}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def precision(args):
    binaries = [("this build", NANO)]
    if args.baseline:
        binaries.append(("baseline", pathlib.Path(args.baseline)))
    spin = [{"hostname": "spin.local", "entrypoint": str(FIXTURES / "cpu-spin" / "app.js"),
             "limits": {"workers": 2, "cpu_ms": 50}}]
    nanos = {name: Nano(spin, binary) for name, binary in binaries}
    try:
        times = {name: [] for name, _ in binaries}
        # Rounds taking turns, so both binaries see the same machine.
        for _ in range(4):
            for name, nano in nanos.items():
                for _ in range(25):
                    start = time.perf_counter()
                    status, _ = get(nano.port, "spin.local", "/bomb")
                    times[name].append((time.perf_counter() - start) * 1000)
                    assert status == 503, status
        print("| binary | cpu_ms | requests | p50 ms | p99 ms | max ms | p99 - limit |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, values in times.items():
            p50, p99 = percentile(values, 50), percentile(values, 99)
            print(f"| {name} | 50 | {len(values)} | {p50:.1f} | {p99:.1f} | {max(values):.1f} | "
                  f"{p99 - 50:+.1f} ms |")
        if args.baseline:
            ratio = statistics.median(times["this build"]) / statistics.median(times["baseline"])
            print(f"\np50 ratio this build / baseline: {ratio:.3f}")
    finally:
        for nano in nanos.values():
            nano.stop()


def neighbour(args):
    apps = [
        {"hostname": "hello.local", "entrypoint": str(HELLO), "limits": {"workers": 2}},
        {"hostname": "spin.local", "entrypoint": str(FIXTURES / "cpu-spin" / "app.js"),
         "limits": {"workers": 2, "cpu_ms": 50}},
    ]
    nano = Nano(apps)
    try:
        alone = wrk(nano.port, "hello.local", args.duration)
        stop = threading.Event()
        bombs = [0]

        def bomber():
            while not stop.is_set():
                get(nano.port, "spin.local", "/bomb")
                bombs[0] += 1

        threads = [threading.Thread(target=bomber) for _ in range(2)]
        for t in threads:
            t.start()
        noisy = wrk(nano.port, "hello.local", args.duration)
        stop.set()
        for t in threads:
            t.join()
        print("| hello app | req/s | p99 ms |")
        print("| --- | ---: | ---: |")
        print(f"| alone | {alone[0]:.0f} | {alone[1]:.2f} |")
        print(f"| beside {bombs[0]} CPU bombs (2 at a time) | {noisy[0]:.0f} | {noisy[1]:.2f} |")
        print(f"\nthroughput ratio {noisy[0] / alone[0]:.2f}; p99 ratio {noisy[1] / alone[1]:.2f}")
    finally:
        nano.stop()


def metrics(args):
    results = {}
    for on in (False, True):
        nano = Nano([{"hostname": "hello.local", "entrypoint": str(HELLO),
                      "context_reset": False, "limits": {"workers": 2}}], admin={"metrics": on})
        try:
            wrk(nano.port, "hello.local", 2)  # warm-up
            results[on] = wrk(nano.port, "hello.local", args.duration, connections=64)[0]
        finally:
            nano.stop()
    print("| metrics recording | req/s |")
    print("| --- | ---: |")
    print(f"| off | {results[False]:.0f} |")
    print(f"| on | {results[True]:.0f} |")
    print(f"\ncost of metrics: {(1 - results[True] / results[False]) * 100:.1f}% of throughput")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("which", nargs="?", default="all", choices=["precision", "neighbour", "metrics", "all"])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--baseline", help="another nano binary for `precision` to compare with")
    args = parser.parse_args()
    if not NANO.exists():
        sys.exit(f"{NANO} is missing: cargo build --release -p nano-dataplane")
    for name, fn in [("precision", precision), ("neighbour", neighbour), ("metrics", metrics)]:
        if args.which in (name, "all"):
            print(f"\n### {name}\n")
            fn(args)


if __name__ == "__main__":
    main()
