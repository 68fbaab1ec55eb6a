#!/usr/bin/env python3
"""What `node.memory_mb` holds, and where a node's memory goes: N hello apps with distinct
sources, one worker each, started from a warm snapshot cache (a first start prepares them);
each app is answered once in turn, then the script prints RSS above the node at rest, what the
budget counts (`nano_node_memory_bytes`), and the growth of each kind of mapping in
/proc/PID/smaps (V8 heap pages are the 256 KiB anonymous ones, glibc's arenas the 8-64 MB ones).

With --leftover, the apps' idle timeout is 2 s instead: the script waits until every worker is
reaped and prints what each app once requested still holds.

Usage: bench/budget.py [--apps 500] [--budget-mb 256] [--leftover] [--nano PATH]
Environment variables (e.g. MALLOC_ARENA_MAX=1) pass through to nano.
"""

import argparse
import collections
import json
import os
import pathlib
import subprocess
import tempfile
import time

from common import ROOT, distinct_hello_apps, free_port, get, wait
from density import nano_config, rss_and_threads


def mappings(pid):
    """Resident bytes by kind of mapping."""
    resident, kind = collections.Counter(), None
    for line in open(f"/proc/{pid}/smaps"):
        parts = line.split()
        if "-" in parts[0] and ":" not in parts[0]:
            low, high = (int(x, 16) for x in parts[0].split("-"))
            size = high - low
            if len(parts) > 5:
                kind = parts[5].split("/")[-1]
            elif size == 256 << 10:
                kind = "anonymous 256 KiB (V8 heap pages)"
            elif 8 << 20 <= size <= 64 << 20:
                kind = "anonymous 8-64 MiB (glibc arenas)"
            else:
                kind = "other anonymous"
        elif parts[0] == "Rss:":
            resident[kind] += int(parts[1]) * 1024
    return resident


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nano", default=str(ROOT / "target" / "release" / "nano"))
    parser.add_argument("--apps", type=int, default=500)
    parser.add_argument("--budget-mb", type=int, default=256)
    parser.add_argument("--leftover", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        sources = distinct_hello_apps(work, args.apps)
        port = free_port()
        idle = 2 if args.leftover else 3600
        budget = 0 if args.leftover else args.budget_mb
        (work / "nano.json").write_text(json.dumps(nano_config(port, sources, work / "cache", idle, budget)))
        env = dict(os.environ, NANO_LOG="warn")

        def start():
            proc = subprocess.Popen([args.nano, "--config", work / "nano.json"], env=env,
                                    stderr=subprocess.DEVNULL)
            wait(lambda: get(port, "127.0.0.1", "/_admin/ready")[0] == 200, "nano ready", 900)
            return proc

        first = start()  # prepares every app into the cache
        first.terminate()
        first.wait()
        nano = start()
        try:
            time.sleep(3)
            rest, before = rss_and_threads(nano.pid)[0], mappings(nano.pid)
            for i in range(args.apps):
                assert get(port, f"app{i}.local")[0] == 200
            time.sleep(idle + 6 if args.leftover else 3)
            now, threads = rss_and_threads(nano.pid)
            after = mappings(nano.pid)
            metrics = get(port, "127.0.0.1", "/_admin/metrics")[1].decode()
        finally:
            nano.terminate()
            nano.wait()
    mb = 1e6
    if args.leftover:
        print(f"{args.apps} apps each answered once, all reaped: rest {rest / mb:.0f} MB, now "
              f"{now / mb:.0f} MB ({threads} threads): {(now - rest) / args.apps / 1e3:.1f} KB per app")
    else:
        counted = [line for line in metrics.splitlines() if line.startswith("nano_node_memory_bytes")]
        print(f"{args.apps} apps each answered once, budget {args.budget_mb} MiB "
              f"({args.budget_mb * 1.048576:.0f} MB): RSS above rest {(now - rest) / mb:.0f} MB, "
              f"{threads} threads; the budget counts {counted}")
    for kind in sorted(after, key=lambda k: before[k] - after[k])[:6]:
        print(f"  {kind:40s} {before[kind] / mb:8.1f} -> {after[kind] / mb:8.1f} MB")


if __name__ == "__main__":
    main()
