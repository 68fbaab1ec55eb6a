#!/usr/bin/env python3
"""Cold-start benchmarks: how long until freshly started apps answer, from source (nothing
cached) vs from the snapshot cache, each against a baseline measured in the same run (a node
with no apps: process start to listening).

  single    one hello app, 20 starts each way: time from process start to its first 200, minus
            the baseline (p50/p99)
  fleet     N apps (default 100) in one node: time until every app answered, from source vs
            cached, and the distribution of per-app first-200 times

Usage: bench/coldstart.py [single|fleet|all] [--apps N] [--app module.js]
"""

import argparse
import http.client
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import distinct_hello_apps, free_port, pct

ROOT = pathlib.Path(__file__).resolve().parent.parent
NANO = ROOT / "target" / "release" / "nano"
HELLO = ROOT / "bench" / "apps" / "hello.js"


def answers(port, host):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/", headers={"Host": host})
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def start(workdir, apps, cache):
    """Starts nano; returns (process, port, start time)."""
    port = free_port()
    config = {"server": {"host": "127.0.0.1", "port": port}, "apps": apps,
              "slivers": {"cache_dir": str(cache)}}
    path = workdir / "nano.json"
    path.write_text(json.dumps(config))
    began = time.perf_counter()
    proc = subprocess.Popen([NANO, "--config", path], stderr=subprocess.DEVNULL,
                            env={"NANO_LOG": "warn", "PATH": "/usr/bin:/bin"})
    return proc, port, began


def time_until_all_answer(workdir, apps, cache):
    proc, port, began = start(workdir, apps, cache)
    pending = {a["hostname"] for a in apps}
    first = {}
    deadline = began + 300
    try:
        while pending and time.perf_counter() < deadline:
            for host in list(pending):
                if answers(port, host):
                    first[host] = (time.perf_counter() - began) * 1000
                    pending.discard(host)
            if pending:
                time.sleep(0.001)
        if pending:
            raise RuntimeError(f"{len(pending)} apps never answered")
        return first
    finally:
        proc.terminate()
        proc.wait()


def baseline(workdir, cache, runs):
    """Process start to the listener answering (404 for an unknown host), with no apps."""
    times = []
    for _ in range(runs):
        proc, port, began = start(workdir, [], cache)
        try:
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    conn.request("GET", "/", headers={"Host": "nobody"})
                    conn.getresponse().read()
                    break
                except OSError:
                    time.sleep(0.001)
            times.append((time.perf_counter() - began) * 1000)
        finally:
            proc.terminate()
            proc.wait()
    return statistics.median(times)


APP = HELLO


def apps_in(workdir, count):
    apps = []
    for i, source in enumerate(distinct_hello_apps(workdir, count, APP)):
        apps.append({"hostname": f"app{i}.local", "entrypoint": str(source),
                     "limits": {"workers": 1}})
    return apps


def single(_args):
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        base = baseline(workdir, workdir / "cache-base", 10)
        apps = apps_in(workdir, 1)
        cold, warm = [], []
        for _ in range(20):
            cache = workdir / "cache"
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(time_until_all_answer(workdir, apps, cache)["app0.local"] - base)
            warm.append(time_until_all_answer(workdir, apps, cache)["app0.local"] - base)
        print(f"baseline (no apps, start to listening): {base:.1f} ms\n")
        print(f"| one {APP.name} app ({APP.stat().st_size // 1024} KB), beyond the baseline | p50 ms | p99 ms |")
        print("| --- | ---: | ---: |")
        print(f"| from source (prepare-app child + isolate) | {pct(cold, 50):.1f} | {pct(cold, 99):.1f} |")
        print(f"| from the snapshot cache | {pct(warm, 50):.1f} | {pct(warm, 99):.1f} |")


def fleet(args):
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        base = baseline(workdir, workdir / "cache-base", 5)
        apps = apps_in(workdir, args.apps)
        cache = workdir / "cache"
        cold = time_until_all_answer(workdir, apps, cache)
        warm = time_until_all_answer(workdir, apps, cache)
        print(f"baseline (no apps, start to listening): {base:.1f} ms\n")
        print(f"| {args.apps} apps, 1 worker each | all answer (ms) | per-app p50 | per-app p99 |")
        print("| --- | ---: | ---: | ---: |")
        for name, first in (("from source", cold), ("from the snapshot cache", warm)):
            t = list(first.values())
            print(f"| {name} | {max(t):.0f} | {pct(t, 50):.0f} | {pct(t, 99):.0f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("which", nargs="?", default="all", choices=["single", "fleet", "all"])
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--app", type=pathlib.Path, default=HELLO, help="the module every app serves")
    args = parser.parse_args()
    global APP
    APP = args.app.resolve()
    if not NANO.exists():
        sys.exit(f"{NANO} is missing: cargo build --release -p nano-dataplane")
    for name, fn in (("single", single), ("fleet", fleet)):
        if args.which in (name, "all"):
            print(f"\n### {name}\n")
            fn(args)


if __name__ == "__main__":
    main()
