"""Helpers shared by the Python benchmarks."""

import argparse
import http.client
import os
import pathlib
import socket
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
HELLO = ROOT / "bench" / "apps" / "hello.js"
# The release binaries and the tokens of the fleet benchmarks.
BIN = ROOT / "target" / "release"
OPERATOR, NODE = "bench-operator-token", "bench-node-token"
FLEET_ENV = dict(os.environ, NANO_LOG="warn", NANO_OPERATOR_TOKEN=OPERATOR, NANO_NODE_TOKEN=NODE)


def start_control_plane(data_dir):
    """A release control plane on sled in `data_dir`, on loopback ports; returns the process
    and its gRPC URL."""
    grpc, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [BIN / "nano-controlplane", "--data-dir", data_dir, "--grpc-listen",
         f"127.0.0.1:{grpc}", "--http-listen", f"127.0.0.1:{http_port}"],
        env=FLEET_ENV, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{grpc}"


def comparison_parser(description=None):
    """Arguments of a benchmark that measures a new `nano` against a baseline binary in the same
    run: --nano (default: this tree's release build) and --baseline (required)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--nano", default=str(ROOT / "target" / "release" / "nano"))
    parser.add_argument("--baseline", required=True)
    return parser


def close_all(socks, proc):
    """Closes the sockets, then kills the process and reaps it."""
    for s in socks:
        s.close()
    proc.kill()
    proc.wait()


def free_port():
    """A loopback port the OS says is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, host, path="/", timeout=10):
    """(status, body bytes) of GET `path` with `Host: host`; (None, b"") if it could not connect."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, data
    except OSError:
        return None, b""


def workerd_binary():
    """The workerd of bench/package.json, installed with npm on first use."""
    workerd = ROOT / "bench" / "node_modules" / ".bin" / "workerd"
    if not workerd.exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=ROOT / "bench",
                       check=True, stdout=subprocess.DEVNULL)
    return workerd


def distinct_hello_apps(workdir, count, app=HELLO):
    """`count` copies of `app` (the hello app), each in its own folder with a distinct source
    (nothing is shared in the snapshot cache between them); returns their entry files."""
    sources = []
    for i in range(count):
        folder = workdir / f"app{i}"
        folder.mkdir(exist_ok=True)
        (folder / "app.js").write_text(app.read_text() + f"\n// app {i}\n")
        sources.append(folder / "app.js")
    return sources


def body(port, host, path="/"):
    """The body of a 200 answer to GET `path` with `Host: host`, or None."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        text = response.read().decode()
        conn.close()
        return text if response.status == 200 else None
    except OSError:
        return None


def wait_answer(ports, host, text):
    """Polls every 2 ms until every node on `ports` answers `text` for `host`."""
    pending = set(ports)
    while pending:
        for port in list(pending):
            if body(port, host) == text:
                pending.discard(port)
        if pending:
            time.sleep(0.002)


def wait(predicate, what, limit=30):
    deadline = time.time() + limit
    while not predicate():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]
