#!/usr/bin/env python3
"""Control-plane replicas on etcd (release builds, a real etcd from PATH, all on loopback).

1. Deploy to all nodes serving, sled vs etcd in the same run. Two data planes; N deploys of a
   hello app, each a new version, timed from starting `nanoctl deploy` until both nodes answer
   the new version over HTTP (polled every 2 ms).
     sled   one control plane on --data-dir, both nodes on it (the baseline)
     etcd   two replicas on one etcd prefix, node-a on replica A, node-b on replica B, the
            deploy sent to A: node-b learns of it through etcd's watch on B
2. Failover: a node configured with both replicas is on one; that replica is killed (SIGKILL);
   timed until the node's /_admin/health says it is connected to the other (re-subscribed,
   polled every 10 ms). The killed replica is started again on its port, and the next round
   kills the one the node moved to.

Usage: bench/ha.py [--deploys N] [--failovers N]
"""

import argparse
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request

from common import BIN, FLEET_ENV, NODE, OPERATOR, free_port, pct, wait, wait_answer

ENV = FLEET_ENV


def start_etcd(work):
    client, peer = free_port(), free_port()
    url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    proc = subprocess.Popen(
        ["etcd", "--data-dir", work / "etcd", "--name", "bench",
         "--listen-client-urls", url, "--advertise-client-urls", url,
         "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
         "--initial-cluster", f"bench={peer_url}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def healthy():
        try:
            return b'"true"' in urllib.request.urlopen(f"{url}/health", timeout=1).read()
        except OSError:
            return False
    wait(healthy, "etcd")
    return proc, url


def replica(store_args, grpc):
    return subprocess.Popen(
        [BIN / "nano-controlplane", *store_args, "--grpc-listen", f"127.0.0.1:{grpc}",
         "--http-listen", f"127.0.0.1:{free_port()}"], env=ENV, stderr=subprocess.DEVNULL)


def node(work, name, urls):
    port = free_port()
    config = {"server": {"host": "127.0.0.1", "port": port},
              "control_plane": {"url": urls, "token": NODE, "node_id": f"node-{name}",
                                "cache_dir": str(work / name)}}
    path = work / f"{name}.json"
    path.write_text(json.dumps(config))
    return subprocess.Popen([BIN / "nano", "--config", path], env=ENV,
                            stderr=subprocess.DEVNULL), port


def ctl_env(urls):
    return dict(os.environ, NANO_SERVER=",".join(urls), NANO_TOKEN=OPERATOR)


def wait_nodes(urls, count):
    def connected():
        out = subprocess.run([BIN / "nanoctl", "nodes", "-o", "json"], env=ctl_env(urls),
                             capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.count('"connected":true') >= count
    wait(connected, f"{count} nodes to connect")


def deploy_to_serving(work, urls, ports, deploys, tag):
    host = f"{tag}.ha.bench.test"
    served = []
    for i in range(deploys):
        app = work / f"{tag}.js"
        marker = f"{tag} version {i}"
        app.write_text("export default { fetch() { return new Response(%s); } }\n"
                       % json.dumps(marker))
        began = time.perf_counter()
        deploy = subprocess.Popen([BIN / "nanoctl", "deploy", app, "--hostname", host,
                                   "--no-wait"], env=ctl_env(urls),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_answer(ports, host, marker)
        served.append(time.perf_counter() - began)
        _, err = deploy.communicate()
        if deploy.returncode != 0:
            raise SystemExit(f"nanoctl deploy failed: {err.decode()}")
    return served


def connected_to(port):
    """The control-plane URL the node's config stream is open to (None: not connected)."""
    try:
        answer = urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}/_admin/health",
                                   headers={"Host": "127.0.0.1"}), timeout=1).read()
        fleet = json.loads(answer)["fleet"]
        return fleet["control_plane"] if fleet["connected"] else None
    except (OSError, ValueError, KeyError):
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--deploys", type=int, default=20)
    parser.add_argument("--failovers", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("etcd"):
        raise SystemExit("etcd is not installed (apt-get install etcd-server)")
    work = pathlib.Path(tempfile.mkdtemp(prefix="nano-ha-bench-"))
    procs = []
    try:
        # 1a. sled: one control plane, two nodes.
        grpc = free_port()
        sled = replica(["--data-dir", work / "sled"], grpc)
        procs.append(sled)
        sled_url = f"http://127.0.0.1:{grpc}"
        (work / "sled-nodes").mkdir(exist_ok=True)
        nodes = [node(work / "sled-nodes", n, sled_url) for n in ["a", "b"]]
        procs += [p for p, _ in nodes]
        wait_nodes([sled_url], 2)
        on_sled = deploy_to_serving(work, [sled_url], [p for _, p in nodes], args.deploys, "sled")
        for proc in procs:
            proc.terminate()
            proc.wait()
        procs.clear()

        # 1b. etcd: two replicas, a node on each, deploys through A.
        etcd, etcd_url = start_etcd(work)
        procs.append(etcd)
        store = ["--etcd-endpoints", etcd_url, "--etcd-lease-ttl-secs", "2"]
        ports = [free_port(), free_port()]
        replicas = [replica(store, p) for p in ports]
        procs += replicas
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        (work / "etcd-nodes").mkdir(exist_ok=True)
        na, pa = node(work / "etcd-nodes", "a", [urls[0], urls[1]])
        nb, pb = node(work / "etcd-nodes", "b", [urls[1], urls[0]])
        procs += [na, nb]
        wait_nodes(urls, 2)
        time.sleep(1)  # node-b settles on B (its first choice)
        on_etcd = deploy_to_serving(work, [urls[0]], [pa, pb], args.deploys, "etcd")

        # 2. Failover of node-a between A and B.
        times = []
        for _ in range(args.failovers):
            wait(lambda: connected_to(pa) is not None, "node-a connected")
            time.sleep(0.5)
            current = urls.index(connected_to(pa))
            other = urls[1 - current]
            began = time.perf_counter()
            replicas[current].send_signal(signal.SIGKILL)
            replicas[current].wait()
            wait(lambda: connected_to(pa) == other, "node-a to re-subscribe", limit=30)
            times.append(time.perf_counter() - began)
            replicas[current] = replica(store, ports[current])
            procs.append(replicas[current])
            wait_nodes([urls[current]], 2)

        ms = lambda v: f"{v * 1000:.0f} ms"
        print(f"deploy to both nodes serving, {args.deploys} deploys each, loopback, release")
        print("| store | p50 | p99 | max | p50 vs sled |")
        print("| --- | ---: | ---: | ---: | ---: |")
        base = statistics.median(on_sled)
        for name, values in [("sled, one control plane (baseline)", on_sled),
                             ("etcd, deploy on A, node-b on B", on_etcd)]:
            print(f"| {name} | {ms(pct(values, 50))} | {ms(pct(values, 99))} | "
                  f"{ms(max(values))} | {statistics.median(values) / base:.2f}x |")
        print()
        print(f"failover, {args.failovers} kills: replica SIGKILLed -> node re-subscribed")
        print(f"p50 {ms(pct(times, 50))}, p99 {ms(pct(times, 99))}, max {ms(max(times))}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            proc.wait()


if __name__ == "__main__":
    main()
