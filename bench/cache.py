#!/usr/bin/env python3
"""A cached-origin route against the same route without the cache, in the same run.

bench/apps/cached-origin.js sits in front of an origin (the bare hyper server of
bench/baseline, on loopback): `cached.local` answers from `caches.default` (a hit after the
first request), `direct.local` fetches from the origin every time. wrk loads each in turn,
alternating, --rounds times; the table gives medians and the ratio. Run for context reset on
(the default) and off.

Usage: bench/cache.py [--seconds 5] [--connections 32] [--rounds 3] [--nano PATH]
Needs wrk (apt-get install wrk) and the release builds (cargo build --release -p nano-dataplane
-p nano-bench-baseline).
"""

import argparse
import json
import re
import statistics
import subprocess
import tempfile
import pathlib

from common import ROOT, free_port, get, wait


def wrk(port, host, seconds, connections):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-H", f"Host: {host}",
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert not non_2xx, out
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nano", default=str(ROOT / "target" / "release" / "nano"))
    parser.add_argument("--origin", default=str(ROOT / "target" / "release" / "hyper-baseline"))
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    origin_port = free_port()
    origin = subprocess.Popen([args.origin, f"127.0.0.1:{origin_port}"], stderr=subprocess.DEVNULL)
    rows = []
    try:
        wait(lambda: get(origin_port, "origin")[0] == 200, "the origin")
        for reset in (True, False):
            port = free_port()
            apps = [
                {"hostname": f"{name}.local", "entrypoint": str(ROOT / "bench" / "apps" / "cached-origin.js"),
                 "context_reset": reset, "limits": {"workers": 2},
                 "env": {"ORIGIN": f"http://127.0.0.1:{origin_port}/", "CACHE": cache},
                 "fetch": {"allow_private_networks": True}}
                for name, cache in (("cached", "on"), ("direct", "off"))
            ]
            with tempfile.TemporaryDirectory() as work:
                config = pathlib.Path(work) / "nano.json"
                config.write_text(json.dumps({"server": {"host": "127.0.0.1", "port": port},
                                              "apps": apps,
                                              "slivers": {"cache_dir": str(pathlib.Path(work) / "snap")}}))
                nano = subprocess.Popen([args.nano, "--config", config], stderr=subprocess.DEVNULL,
                                        env={"NANO_LOG": "warn", "PATH": "/usr/bin:/bin"})
                try:
                    wait(lambda: get(port, "cached.local")[0] == 200, "nano")
                    figures = {"cached": [], "direct": []}
                    for _ in range(args.rounds):
                        for name in ("cached", "direct"):
                            figures[name].append(wrk(port, f"{name}.local", args.seconds, args.connections))
                    rows.append((reset, {k: statistics.median(v) for k, v in figures.items()}, figures))
                finally:
                    nano.terminate()
                    nano.wait()
    finally:
        origin.terminate()
        origin.wait()
    print("| context reset | origin every time req/s | cache hit req/s | ratio | rounds (direct; cached) |")
    print("| --- | ---: | ---: | ---: | --- |")
    for reset, median, figures in rows:
        print(f"| {'on' if reset else 'off'} | {median['direct']:.0f} | {median['cached']:.0f} "
              f"| {median['cached'] / median['direct']:.2f} "
              f"| {', '.join(f'{x:.0f}' for x in figures['direct'])}; {', '.join(f'{x:.0f}' for x in figures['cached'])} |")


if __name__ == "__main__":
    main()
