#!/usr/bin/env python3
"""What a live tail costs the app it tails: hello-world throughput with no tail, with one tail
reading every event (`/_admin/tail?hostname=...`), and with one at `sample=0.01`, in the same
run, taking turns.

With --fleet the node is a member of a fleet (a control plane beside it, the app deployed with
nanoctl) and the tails are `nanoctl tail --output json` through the control plane.

Usage: bench/tail.py [--seconds 5] [--connections 32] [--rounds 3] [--nano PATH] [--reset true|false] [--fleet]
Needs wrk (apt-get install wrk) and the release build (nano; with --fleet also
nano-controlplane and nanoctl).
"""

import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import tempfile
import threading
import time
import http.client

from common import BIN, FLEET_ENV, HELLO, NODE, OPERATOR, ROOT, free_port, get, start_control_plane, wait


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
        count(line, counts)
    conn.close()


def count(line, counts):
    """Counts one tail line: an event, or events dropped."""
    event = json.loads(line)
    if "dropped" in event:
        counts["dropped"] += event["dropped"]
    elif "url" in event:
        counts["events"] += 1


def nanoctl_tail(env, args, stop, counts):
    """Runs `nanoctl tail` until `stop` is set, counting event and dropped lines."""
    ctl = subprocess.Popen([str(BIN / "nanoctl"), "--output", "json", "tail", *args], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    threading.Thread(target=lambda: (stop.wait(), ctl.terminate()), daemon=True).start()
    for line in ctl.stdout:
        count(line, counts)
    ctl.wait()


def start_fleet(work, port, nano, reset):
    """A control plane and one node serving bench.local (deployed with nanoctl); returns the
    processes and the environment nanoctl needs."""
    control_plane, url = start_control_plane(work / "cp")
    procs = [control_plane]
    env = FLEET_ENV
    config = work / "node.json"
    config.write_text(json.dumps({
        "server": {"host": "127.0.0.1", "port": port},
        "control_plane": {"url": url, "token": NODE, "node_id": "node-a",
                          "cache_dir": str(work / "node")}}))
    procs.append(subprocess.Popen([nano, "--config", config], env=env, stderr=subprocess.DEVNULL))
    ctl_env = dict(os.environ, NANO_SERVER=url, NANO_TOKEN=OPERATOR)
    wait(lambda: subprocess.run([BIN / "nanoctl", "nodes", "-o", "json"], env=ctl_env,
                                capture_output=True, text=True).stdout.count('"connected":true') == 1,
         "the node to connect")
    subprocess.run([BIN / "nanoctl", "deploy", HELLO, "--hostname", "bench.local", "--workers", "2",
                    "--context-reset", reset], env=ctl_env, check=True, capture_output=True)
    return procs, ctl_env


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nano", default=str(ROOT / "target" / "release" / "nano"))
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reset", default="false")
    parser.add_argument("--fleet", action="store_true")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        if args.fleet:
            procs, ctl_env = start_fleet(work, port, args.nano, args.reset)
        else:
            config = work / "nano.json"
            config.write_text(json.dumps({
                "server": {"host": "127.0.0.1", "port": port},
                "slivers": {"cache_dir": str(work / "snap")},
                "apps": [{"hostname": "bench.local", "entrypoint": str(HELLO),
                          "context_reset": args.reset == "true", "limits": {"workers": 2}}],
            }))
            procs = [subprocess.Popen([args.nano, "--config", config], stderr=subprocess.DEVNULL,
                                      env={"NANO_LOG": "warn", "PATH": "/usr/bin:/bin"})]
        try:
            wait(lambda: get(port, "bench.local")[0] == 200, "nano")
            wrk(port, 2, 8)  # warm-up
            results = {"no tail": [], "tail, every event": [], "tail, sample=0.01": []}
            queries = {"tail, every event": "hostname=bench.local",
                       "tail, sample=0.01": "hostname=bench.local&sample=0.01"}
            flags = {"tail, every event": ["bench.local"],
                     "tail, sample=0.01": ["bench.local", "--sample", "0.01"]}
            seen = {}
            for _ in range(args.rounds):
                for name in results:
                    stop, counts, reader = threading.Event(), {"events": 0, "dropped": 0}, None
                    if name in queries and args.fleet:
                        reader = threading.Thread(target=nanoctl_tail, args=(ctl_env, flags[name], stop, counts),
                                                  daemon=True)
                        reader.start()
                        time.sleep(1)  # the nodes hear of the tail
                    elif name in queries:
                        reader = threading.Thread(target=tail, args=(port, queries[name], stop, counts), daemon=True)
                        reader.start()
                    results[name].append(wrk(port, args.seconds, args.connections))
                    stop.set()
                    if reader:
                        reader.join(10)
                    seen.setdefault(name, []).append(counts)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait()
    base = statistics.median(results["no tail"])
    mode = "fleet, nanoctl tail" if args.fleet else "/_admin/tail"
    print(f"| hello, context_reset: {args.reset}, {mode} | req/s (median) | vs no tail | rounds | events seen / dropped (last round) |")
    print("| --- | ---: | ---: | --- | --- |")
    for name, rounds in results.items():
        rate = statistics.median(rounds)
        counts = seen[name][-1]
        shown = "" if name == "no tail" else f"{counts['events']} / {counts['dropped']}"
        print(f"| {name} | {rate:.0f} | {rate / base:.3f} | {', '.join(f'{r:.0f}' for r in rounds)} | {shown} |")


if __name__ == "__main__":
    main()
