#!/usr/bin/env python3
"""What the hardening guards cost, and what they buy, against a baseline build in the same run.

    python3 bench/hostile.py --baseline /path/to/nano-before [--nano target/release/nano]

1. Throughput: a hello app (context reset, 2 workers) under wrk, the two builds alternating for
   `--rounds` rounds; medians and their ratio (the guards must cost < 2%).
2. Idle connections: 1 100 silent TCP connections under a soft open-files limit of 1 024 (the
   defaults otherwise); how many the node still holds after `header_timeout_secs` (1 s here) and
   whether a neighbour app answers, with its p99 over 50 requests.
3. Slow uploads: 260 POSTs that send 1 byte of a 10-byte body to an app with 1 worker and 256
   slots; whether the app itself answers while they are held, and the neighbour's p99.
"""

import http.client
import pathlib
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from common import HELLO, close_all, comparison_parser, free_port, pct, wait  # noqa: E402



def start(nano, apps, server=None, nofile=None):
    port = free_port()
    folder = pathlib.Path(tempfile.mkdtemp())
    config = folder / "config.json"
    server = {"host": "127.0.0.1", "port": port, **(server or {})}
    import json

    config.write_text(json.dumps({"server": server, "apps": apps}))

    def limits():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(
        [nano, "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"NANO_LOG": "warn", "PATH": "/usr/bin:/bin"},
        preexec_fn=limits,
    )
    wait(lambda: get(port, "hello.local")[0] == 200, "nano to listen")
    return proc, port


def get(port, host, timeout=5):
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        response.read()
        conn.close()
        return response.status, time.perf_counter() - started
    except OSError:
        return None, time.perf_counter() - started


def neighbour(port, count=50):
    results = [get(port, "hello.local") for _ in range(count)]
    ok = sum(1 for status, _ in results if status == 200)
    return ok, pct([t for _, t in results], 99) * 1000


def hello(workers=2, **extra):
    return {"hostname": "hello.local", "entrypoint": str(HELLO), "limits": {"workers": workers}, **extra}


def throughput(nano, seconds, connections):
    proc, port = start(nano, [hello()])
    try:
        url = f"http://127.0.0.1:{port}/"
        subprocess.run(["wrk", "-t1", "-c8", "-d1s", "-H", "Host: hello.local", url], capture_output=True)
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-H", "Host: hello.local", url],
            capture_output=True,
            text=True,
        ).stdout
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    finally:
        proc.kill()
        proc.wait()


def idle_connections(nano):
    proc, port = start(nano, [hello()], server={"header_timeout_secs": 1}, nofile=1024)
    socks = []
    try:
        for _ in range(1100):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        ok, p99 = neighbour(port)
        time.sleep(2)  # past header_timeout_secs
        held = 0
        for s in socks:
            s.settimeout(0.01)
            try:
                if s.recv(1) != b"":
                    held += 1
            except socket.timeout:
                held += 1
            except OSError:
                pass
        return {"opened": len(socks), "held after 2 s": held, "neighbour ok /50": ok, "neighbour p99 ms": round(p99, 1)}
    finally:
        close_all(socks, proc)


def slow_uploads(nano):
    apps = [hello(), {"hostname": "target.local", "entrypoint": str(HELLO), "limits": {"workers": 1}}]
    proc, port = start(nano, apps, nofile=4096)
    socks = []
    try:
        for _ in range(260):
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"POST / HTTP/1.1\r\nHost: target.local\r\nContent-Length: 10\r\n\r\nx")
            socks.append(s)
        time.sleep(0.5)
        target = get(port, "target.local")[0]
        ok, p99 = neighbour(port)
        return {"slow uploads": len(socks), "target app answers": target, "neighbour ok /50": ok, "neighbour p99 ms": round(p99, 1)}
    finally:
        close_all(socks, proc)


def main():
    parser = comparison_parser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()

    rps = {"before": [], "after": []}
    for _ in range(args.rounds):
        rps["before"].append(throughput(args.baseline, args.seconds, args.connections))
        rps["after"].append(throughput(args.nano, args.seconds, args.connections))
    before, after = statistics.median(rps["before"]), statistics.median(rps["after"])
    print("| build | hello req/s (median) | rounds |")
    print("| --- | ---: | --- |")
    print(f"| before | {before:.0f} | {', '.join(f'{r:.0f}' for r in rps['before'])} |")
    print(f"| after | {after:.0f} ({after / before - 1:+.1%}) | {', '.join(f'{r:.0f}' for r in rps['after'])} |")
    print()
    for name, run in (("idle connections", idle_connections), ("slow uploads", slow_uploads)):
        for build, nano in (("before", args.baseline), ("after", args.nano)):
            print(f"{name}, {build}: {run(nano)}")


if __name__ == "__main__":
    main()
