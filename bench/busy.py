#!/usr/bin/env python3
"""Busy workers: what a worker under steady traffic costs a node, NANO (context reset on and
off, and a baseline build if given) side by side with workerd in the same run.

K hello apps (distinct sources, one worker each) each get a `wrk -c1` of their own for --secs
seconds, all at once. For each runtime: RSS above rest per busy worker (the highest RSS sampled
while the load ran, and RSS at its end), CPU time per request (the process's user and system
ticks over the run divided by the requests served) and minor page faults per request.

With context reset every request leaves a dead context in the isolate's old generation, so a
busy reset-on worker's heap cycles between what is live and V8's collection limit; the pages a
collection frees stay in V8's page pool, resident, until a memory-reducing collection.

Usage: bench/busy.py [--apps 10] [--secs 10] [--nano PATH] [--baseline PATH] [--no-workerd]
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import tempfile
import time

from common import ROOT, distinct_hello_apps, free_port, get, workerd_binary, wait
from density import rss_and_threads, workerd_config


def cpu_and_faults(pid):
    """(user seconds, system seconds, minor page faults) of the process so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks, int(fields[7])


def nano_config(port, sources, cache, reset):
    return {
        "server": {"host": "127.0.0.1", "port": port},
        "slivers": {"cache_dir": str(cache)},
        "apps": [
            {"hostname": f"app{i}.local", "entrypoint": str(src), "context_reset": reset,
             "limits": {"workers": 1}}
            for i, src in enumerate(sources)
        ],
    }


def measure(name, command, port, hosts, secs, ready_path=None):
    """Starts `command`, warms every app, loads them all at once; returns the figures."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(lambda: get(port, "nobody.local")[0] is not None, f"{name} listening", limit=600)
        if ready_path:
            wait(lambda: get(port, "127.0.0.1", ready_path)[0] == 200, f"{name} ready", limit=600)
        for host in hosts:
            for _ in range(3):
                status, body = get(port, host)
                assert status == 200, (name, host, status, body[:200])
        time.sleep(3)
        rest = rss_and_threads(proc.pid)[0]
        before = cpu_and_faults(proc.pid)
        loads = [subprocess.Popen(["wrk", "-t1", "-c1", f"-d{secs}s", "-H", f"Host: {host}",
                                  f"http://127.0.0.1:{port}/"],
                                 stdout=subprocess.PIPE, text=True) for host in hosts]
        peak = rest
        while any(load.poll() is None for load in loads):
            peak = max(peak, rss_and_threads(proc.pid)[0])
            time.sleep(0.1)
        end = rss_and_threads(proc.pid)[0]
        user, system, faults = (b - a for a, b in zip(before, cpu_and_faults(proc.pid)))
        requests, errors = 0, 0
        for load in loads:
            out = load.stdout.read()
            requests += int(re.search(r"(\d+) requests in", out).group(1))
            failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            errors += int(failed.group(1)) if failed else 0
        assert errors == 0, (name, errors)
        return {"rest": rest, "peak": peak, "end": end, "requests": requests, "user": user,
                "system": system, "faults": faults}
    finally:
        proc.terminate()
        proc.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nano", default=str(ROOT / "target" / "release" / "nano"))
    parser.add_argument("--baseline", help="another nano build, measured with reset on")
    parser.add_argument("--apps", type=int, default=10)
    parser.add_argument("--secs", type=int, default=10)
    parser.add_argument("--no-workerd", action="store_true")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        sources = distinct_hello_apps(workdir, args.apps)
        hosts = [f"app{i}.local" for i in range(args.apps)]
        runs = [("NANO, reset on", args.nano, True), ("NANO, reset off", args.nano, False)]
        if args.baseline:
            runs.append(("baseline, reset on", args.baseline, True))
        for label, binary, reset in runs:
            # Each build its own warm cache (snapshots are keyed by the runtime's version).
            cache = workdir / f"cache-{pathlib.Path(binary).resolve().stat().st_ino}"
            port = free_port()
            config = workdir / "nano.json"
            config.write_text(json.dumps(nano_config(port, sources, cache, reset)))
            results[label] = measure(label, [binary, "--config", config], port, hosts, args.secs,
                                     ready_path="/_admin/ready")
            print(label, results[label], flush=True)
        if not args.no_workerd:
            workerd = workerd_binary()
            port = free_port()
            capnp = workdir / "workerd.capnp"
            capnp.write_text(workerd_config(port, sources, workdir))
            results["workerd"] = measure("workerd", [workerd, "serve", capnp], port, hosts,
                                         args.secs)
            print("workerd", results["workerd"], flush=True)

    mib = 1024 * 1024
    print(f"\n{args.apps} hello apps, one worker each, each under its own wrk -c1 for {args.secs} s")
    print()
    print("| runtime | requests | CPU µs per request (user + system) | page faults per request "
          "| per busy worker: peak RSS above rest MB | at the end MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, r in results.items():
        n = r["requests"]
        print(f"| {label} | {n} | {(r['user'] + r['system']) / n * 1e6:.0f} "
              f"({r['user'] / n * 1e6:.0f} + {r['system'] / n * 1e6:.0f}) "
              f"| {r['faults'] / n:.2f} "
              f"| {(r['peak'] - r['rest']) / args.apps / mib:.2f} "
              f"| {(r['end'] - r['rest']) / args.apps / mib:.2f} |")


if __name__ == "__main__":
    main()
