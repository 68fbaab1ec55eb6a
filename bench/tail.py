#!/usr/bin/env python3
"""What a live tail costs the app it tails: hello-world throughput with no tail, with one tail
reading every event (`/_admin/tail?hostname=...`), and with one at `sample=0.01`, in the same
run, taking turns.

Usage: bench/tail.py [--seconds 5] [--connections 32] [--rounds 3] [--nano PATH] [--reset true|false]
Needs wrk (apt-get install wrk) and the release build.
"""

import argparse
import json
import pathlib
import re
import statistics
import subprocess
import tempfile
import threading
import http.client

from common import HELLO, ROOT, free_port, get, wait


def wrk(port, seconds, connections):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-H", "Host: bench.local",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True).stdout
    assert "Non-2xx" not in out, out
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def tail(port, query, stop, counts):
    """Reads the tail until `stop` is set, counting event and dropped lines."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", f"/_admin/tail?{query}", headers={"Host": "127.0.0.1"})
    response = conn.getresponse()
    while not stop.is_set():
        line = response.readline()
        if not line:
            break
        event = json.loads(line)
        if "dropped" in event:
            counts["dropped"] += event["dropped"]
        elif "url" in event:
            counts["events"] += 1
    conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nano", default=str(ROOT / "target" / "release" / "nano"))
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reset", default="false")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        config = pathlib.Path(work) / "nano.json"
        config.write_text(json.dumps({
            "server": {"host": "127.0.0.1", "port": port},
            "slivers": {"cache_dir": str(pathlib.Path(work) / "snap")},
            "apps": [{"hostname": "bench.local", "entrypoint": str(HELLO),
                      "context_reset": args.reset == "true", "limits": {"workers": 2}}],
        }))
        nano = subprocess.Popen([args.nano, "--config", config], stderr=subprocess.DEVNULL,
                                env={"NANO_LOG": "warn", "PATH": "/usr/bin:/bin"})
        try:
            wait(lambda: get(port, "bench.local")[0] == 200, "nano")
            wrk(port, 2, 8)  # warm-up
            results = {"no tail": [], "tail, every event": [], "tail, sample=0.01": []}
            queries = {"tail, every event": "hostname=bench.local",
                       "tail, sample=0.01": "hostname=bench.local&sample=0.01"}
            seen = {}
            for _ in range(args.rounds):
                for name in results:
                    stop, counts, reader = threading.Event(), {"events": 0, "dropped": 0}, None
                    if name in queries:
                        reader = threading.Thread(target=tail, args=(port, queries[name], stop, counts), daemon=True)
                        reader.start()
                    results[name].append(wrk(port, args.seconds, args.connections))
                    stop.set()
                    seen.setdefault(name, []).append(counts)
        finally:
            nano.terminate()
            nano.wait()
    base = statistics.median(results["no tail"])
    print(f"| hello, context_reset: {args.reset} | req/s (median) | vs no tail | rounds | events seen / dropped (last round) |")
    print("| --- | ---: | ---: | --- | --- |")
    for name, rounds in results.items():
        rate = statistics.median(rounds)
        counts = seen[name][-1]
        shown = "" if name == "no tail" else f"{counts['events']} / {counts['dropped']}"
        print(f"| {name} | {rate:.0f} | {rate / base:.3f} | {', '.join(f'{r:.0f}' for r in rounds)} | {shown} |")


if __name__ == "__main__":
    main()
