#!/usr/bin/env python3
"""What the runtime costs an app, for two nano binaries in one run (e.g. a change against the
commit before it): binary size, the app's snapshot size, the process's RSS and the isolate's
heap after warm-up, and the CPU nano spends per request with context reset on (process CPU time
over a fixed number of requests, so the client's own cost is not in it).

One hello app, one worker (one isolate), requests on one keep-alive connection, each sent once
the one before is answered. With --wrk C, the load is instead `wrk -cC -t1` for --secs seconds
(the issue's "10 s wrk run"; wrk's default is 10 connections), so requests queue at the worker
and the front's threads do not sleep between them. The two binaries alternate --rounds times;
each figure is the median of its rounds.

Usage: bench/footprint.py --nano NEW --baseline OLD [--requests N] [--rounds R] [--app module.js]
           [--wrk CONNECTIONS [--secs 10]]
           [--floor target/release/examples/context_cost] [--floor-flags "V8 flags"]

--floor also times V8's own empty `Context::new` (the context_cost example, 2000 contexts) after
each round, and prints each build's CPU per request as a multiple of it: the issue's "floors",
measured in the same minutes as the requests. --floor-flags also times an empty context made with
those V8 flags (nano's own, isolate::V8_FLAGS: the features a flag turns on are installed in
every new context, V8's empty one included), and prints the multiple of that too.
"""

import http.client
import json
import os
import pathlib
import re
import statistics
import subprocess
import tempfile

from common import HELLO, body, comparison_parser, free_port, wait

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_bytes(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(nano, app, requests, wrk=0, secs=10):
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        cache = work / "cache"
        config = work / "nano.json"
        config.write_text(json.dumps({
            "server": {"host": "127.0.0.1", "port": port},
            "apps": [{"hostname": "bench.local", "entrypoint": str(app), "limits": {"workers": 1}}],
            "slivers": {"cache_dir": str(cache)},
        }))
        proc = subprocess.Popen([nano, "--config", config], stderr=subprocess.DEVNULL,
                                env={"NANO_LOG": "warn", "PATH": "/usr/bin:/bin"})
        try:
            wait(lambda: body(port, "bench.local") is not None, "nano to answer")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)

            def get(path="/"):
                conn.request("GET", path, headers={"Host": "bench.local"})
                response = conn.getresponse()
                response.read()
                assert response.status == 200, response.status

            for _ in range(200):
                get()
            before = cpu_seconds(proc.pid)
            if wrk:
                out = subprocess.run(
                    ["wrk", f"-c{wrk}", "-t1", f"-d{secs}s", "-H", "Host: bench.local",
                     f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
                requests = int(re.search(r"(\d+) requests in", out).group(1))
            else:
                for _ in range(requests):
                    get()
            cpu_us = (cpu_seconds(proc.pid) - before) / requests * 1e6
            # A new connection: the front closes one left idle through a wrk run.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/_admin/isolates")
            isolates = json.loads(conn.getresponse().read())
            heap = sum(i.get("heap_used_bytes", 0) for i in isolates.get("isolates", []))
            snapshot = sum(f.stat().st_size for f in cache.glob("*.snapshot"))
            return {"rss": rss_bytes(proc.pid), "heap": heap, "snapshot": snapshot, "cpu_us": cpu_us}
        finally:
            proc.terminate()
            proc.wait()


def context_new_us(example, flags=""):
    """Microseconds per empty `Context::new`, timed by the context_cost example."""
    out = subprocess.run([example, "2000", "1", *flags.split()], capture_output=True, text=True,
                         check=True).stdout
    value, unit = re.search(r"([0-9.]+)(µs|ms) per Context::new", out).groups()
    return float(value) * (1000 if unit == "ms" else 1)


def main():
    parser = comparison_parser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--app", default=str(HELLO))
    parser.add_argument("--floor")
    parser.add_argument("--floor-flags", default="")
    parser.add_argument("--wrk", type=int, default=0)
    parser.add_argument("--secs", type=int, default=10)
    args = parser.parse_args()
    runs = {"baseline": [], "new": []}
    floors, flagged = [], []
    for _ in range(args.rounds):
        for name, binary in (("baseline", args.baseline), ("new", args.nano)):
            runs[name].append(measure(binary, args.app, args.requests, args.wrk, args.secs))
        if args.floor:
            floors.append(context_new_us(args.floor))
            if args.floor_flags:
                flagged.append(context_new_us(args.floor, args.floor_flags))
    floor = statistics.median(floors) if floors else None
    floor_flagged = statistics.median(flagged) if flagged else None
    print("| build | binary MB | snapshot KB | RSS MB | isolate heap KB | CPU µs per reset-on request |"
          + (" vs `Context::new` |" if floor else "")
          + (f" vs `Context::new` with {args.floor_flags} |" if floor_flagged else ""))
    print("| --- | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if floor else "")
          + (" ---: |" if floor_flagged else ""))
    for name, binary in (("baseline", args.baseline), ("new", args.nano)):
        med = {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]}
        print(f"| {name} | {os.path.getsize(binary) / 1e6:.1f} | {med['snapshot'] / 1e3:.0f} | "
              f"{med['rss'] / 1e6:.1f} | {med['heap'] / 1e3:.0f} | {med['cpu_us']:.0f} |"
              + (f" {med['cpu_us'] / floor:.2f} |" if floor else "")
              + (f" {med['cpu_us'] / floor_flagged:.2f} |" if floor_flagged else ""))
    if floor:
        print(f"| `Context::new` (floor) | | | | | {floor:.0f} | 1.00 |")
    if floor_flagged:
        print(f"| `Context::new` with {args.floor_flags} | | | | | {floor_flagged:.0f} | | 1.00 |")
    print()
    print("rounds:", json.dumps(runs), "floors:", json.dumps(floors), "with flags:", json.dumps(flagged))


if __name__ == "__main__":
    main()
