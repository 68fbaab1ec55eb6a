#!/usr/bin/env python3
"""Density: what N small apps cost a node, NANO side by side with workerd in the same run.

Each of N apps is the hello app with a distinct source (nothing shared in the snapshot cache),
one worker each. For each runtime:

  start       process start to the listener answering, with a warm snapshot cache (NANO
              prepares every app once before the measured start); then to every app ready
  rest        RSS and threads a few seconds after start, before any request
  active      after the first --active apps got --requests requests each
  settled     --settle-secs later (NANO: an idle worker collects the contexts its requests left
              a quarter of a second after its last request)
  idle        after those went idle past the idle timeout (NANO: limits.idle_timeout_secs =
              --idle-secs; workerd keeps its isolates)
  latency     (NANO) first-request latency of an app whose worker was reaped, against the next
              request (warm), --samples times each (p50/p99)

With --budget-mb M, NANO also runs with node.memory_mb = M (same traffic), to show the budget
holding. With --reset-off, NANO also runs with "context_reset": false (same traffic): one
context per isolate for all its requests, as workerd keeps, so no spare contexts (with context
reset an idle worker keeps two ready for a burst). workerd serves all apps from one socket
through a router worker that forwards by Host to each app's service binding.

Usage: bench/density.py [--apps 500] [--active 100] [--idle-secs 3] [--budget-mb 0]
                        [--reset-off] [--nano PATH] [--no-workerd]
"""

import argparse
import http.client
import json
import pathlib
import subprocess
import tempfile
import time

from common import ROOT, distinct_hello_apps, free_port, get, workerd_binary, pct, wait


def rss_and_threads(pid):
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["Threads"])




def nano_config(port, sources, cache, idle_secs, budget_mb, context_reset=True):
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "slivers": {"cache_dir": str(cache)},
        "apps": [
            {"hostname": f"app{i}.local", "entrypoint": str(src), "context_reset": context_reset,
             "limits": {"workers": 1, "idle_timeout_secs": idle_secs}}
            for i, src in enumerate(sources)
        ],
    }
    if budget_mb:
        config["node"] = {"memory_mb": budget_mb}
    return config


def workerd_config(port, sources, workdir):
    workers = []
    services = ['(name = "router", worker = .router)']
    bindings = []
    for i, src in enumerate(sources):
        services.append(f'(name = "app{i}", worker = .app{i})')
        bindings.append(f'(name = "app{i}", service = "app{i}")')
        workers.append(
            f'const app{i} :Workerd.Worker = (modules = [(name = "app.js", esModule = embed "{src.relative_to(workdir)}")], '
            f'compatibilityDate = "2026-11-01");'
        )
    router = (
        'export default { fetch(request, env) { '
        'const host = (request.headers.get("host") || "").split(".")[0]; '
        'const app = env[host]; '
        'return app ? app.fetch(request) : new Response("unknown host", { status: 404 }); } };'
    )
    return "\n".join([
        'using Workerd = import "/workerd/workerd.capnp";',
        "const config :Workerd.Config = (",
        f"  services = [{', '.join(services)}],",
        f'  sockets = [(name = "http", address = "127.0.0.1:{port}", http = (), service = "router")],',
        ");",
        f'const router :Workerd.Worker = (modules = [(name = "router.js", esModule = {json.dumps(router)})], '
        f'compatibilityDate = "2026-11-01", bindings = [{", ".join(bindings)}]);',
        *workers,
    ])


def measure(name, command, port, hosts, args, ready_path=None):
    """Starts `command`, walks it through start, rest, active and idle; returns the figures."""
    began = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait(lambda: get(port, "nobody.local")[0] is not None, f"{name} listening", limit=600)
        listening = time.perf_counter() - began
        if ready_path:
            wait(lambda: get(port, "127.0.0.1", ready_path)[0] == 200, f"{name} ready", limit=600)
        ready = time.perf_counter() - began
        time.sleep(3)
        figures = {"listening s": listening, "ready s": ready}
        figures["rest"] = rss_and_threads(proc.pid)
        for host in hosts[: args.active]:
            for _ in range(args.requests):
                status, body = get(port, host)
                assert status == 200, (name, host, status, body[:200])
        figures["active"] = rss_and_threads(proc.pid)
        time.sleep(args.settle_secs)
        figures["settled"] = rss_and_threads(proc.pid)
        time.sleep(max(0, args.idle_secs + 3 - args.settle_secs))
        figures["idle"] = rss_and_threads(proc.pid)
        # Every app still answers (the reaped and never-started ones start now).
        for host in hosts:
            status, body = get(port, host)
            assert status == 200, (name, host, status, body[:200])
        figures["all answered"] = rss_and_threads(proc.pid)
        return figures
    finally:
        proc.terminate()
        proc.wait()


def reaped_latency(nano, source, cache, samples):
    """(cold ms list, warm ms list): GET to an app whose only worker was reaped, then again."""
    port = free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "slivers": {"cache_dir": str(cache)},
        "apps": [{"hostname": "lat.local", "entrypoint": str(source),
                  "limits": {"workers": 1, "idle_timeout_secs": 1}}],
    }
    path = cache.parent / "latency.json"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([nano, "--config", path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def reaped():
        status, body = get(port, "127.0.0.1", "/_admin/isolates")
        isolates = json.loads(body or b"{}").get("isolates", [])
        return status == 200 and all(i["state"] == "reaped" for i in isolates)

    def timed():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        began = time.perf_counter()
        conn.request("GET", "/", headers={"Host": "lat.local"})
        response = conn.getresponse()
        response.read()
        elapsed = (time.perf_counter() - began) * 1000
        conn.close()
        assert response.status == 200, response.status
        return elapsed

    cold, warm = [], []
    try:
        wait(lambda: get(port, "127.0.0.1", "/_admin/ready")[0] == 200, "latency node ready")
        for _ in range(samples):
            wait(reaped, "the worker reaped", limit=60)
            cold.append(timed())
            warm.append(timed())
        return cold, warm
    finally:
        proc.terminate()
        proc.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nano", default=str(ROOT / "target" / "release" / "nano"))
    parser.add_argument("--apps", type=int, default=500)
    parser.add_argument("--active", type=int, default=100)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--idle-secs", type=int, default=3)
    parser.add_argument("--settle-secs", type=int, default=5)
    parser.add_argument("--budget-mb", type=int, default=0)
    parser.add_argument("--reset-off", action="store_true")
    parser.add_argument("--no-workerd", action="store_true")
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        sources = distinct_hello_apps(workdir, args.apps)
        hosts = [f"app{i}.local" for i in range(args.apps)]
        cache = workdir / "cache"
        runs = ([("nano", 0, True)]
                + ([("nano budget", args.budget_mb, True)] if args.budget_mb else [])
                + ([("nano reset off", 0, False)] if args.reset_off else []))
        # Prepare every app once so the measured starts read a warm cache.
        port = free_port()
        config = workdir / "warm.json"
        config.write_text(json.dumps(nano_config(port, sources, cache, args.idle_secs, 0)))
        began = time.perf_counter()
        proc = subprocess.Popen([args.nano, "--config", config], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait(lambda: get(port, "127.0.0.1", "/_admin/ready")[0] == 200, "cache warm-up", limit=3600)
            results["nano cold prepare s"] = time.perf_counter() - began
        finally:
            proc.terminate()
            proc.wait()
        for label, budget, context_reset in runs:
            port = free_port()
            config = workdir / f"{label.replace(' ', '-')}.json"
            config.write_text(json.dumps(nano_config(port, sources, cache, args.idle_secs, budget,
                                                     context_reset)))
            results[label] = measure(label, [args.nano, "--config", config], port, hosts, args,
                                     ready_path="/_admin/ready")
            print(label, results[label], flush=True)
        if args.samples:
            results["latency"] = reaped_latency(args.nano, sources[0], cache, args.samples)
        if not args.no_workerd:
            workerd = workerd_binary()
            port = free_port()
            capnp = workdir / "workerd.capnp"
            capnp.write_text(workerd_config(port, sources, workdir))
            results["workerd"] = measure("workerd", [workerd, "serve", capnp], port, hosts, args)

    mib = 1024 * 1024
    print(f"{args.apps} apps, one worker each; {args.active} of them get {args.requests} requests; "
          f"idle timeout {args.idle_secs} s")
    if "nano cold prepare s" in results:
        print(f"NANO preparing every app from source (cold cache): {results['nano cold prepare s']:.1f} s")
    print()
    print("| runtime | listening s | ready s | RSS MB at rest | threads | RSS MB after traffic | threads "
          f"| {args.settle_secs} s later | threads "
          "| RSS MB idle again | threads | RSS MB after every app answered | threads |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    names = {"nano budget": f"NANO, node.memory_mb {args.budget_mb}",
             "nano reset off": "NANO, context_reset false"}
    for label in ("nano", "nano budget", "nano reset off", "workerd"):
        if label not in results:
            continue
        r = results[label]
        name = names.get(label, label)
        cells = [f"{r['listening s']:.2f}", f"{r['ready s']:.2f}"]
        for phase in ("rest", "active", "settled", "idle", "all answered"):
            rss, threads = r[phase]
            cells += [f"{rss / mib:.0f}", str(threads)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if "latency" in results:
        cold, warm = results["latency"]
        print()
        print(f"first request to an app whose worker was reaped ({len(cold)} samples): "
              f"p50 {pct(cold, 50):.2f} ms, p99 {pct(cold, 99):.2f} ms; "
              f"the request after it (warm): p50 {pct(warm, 50):.2f} ms, p99 {pct(warm, 99):.2f} ms")
    if "workerd" in results or "nano reset off" in results:
        n = results["nano"]
        print()
        print(f"per idle app at rest: NANO {n['rest'][0] / args.apps / mib:.2f} MB"
              + (f", workerd {results['workerd']['rest'][0] / args.apps / mib:.2f} MB"
                 if "workerd" in results else ""))
        for phase, when in (("active", "right after traffic"),
                            ("settled", f"{args.settle_secs} s after traffic")):
            line = f"per running worker ({when}, above rest): NANO {per_worker(n, phase, args):.2f} MB"
            if "nano reset off" in results:
                line += f", with context_reset false {per_worker(results['nano reset off'], phase, args):.2f} MB"
            if "workerd" in results:
                line += f"; workerd per worker {results['workerd'][phase][0] / args.apps / mib:.2f} MB"
            print(line)


def per_worker(figures, phase, args):
    """MB per running worker in `phase`: RSS above the node at rest, over the active apps."""
    return (figures[phase][0] - figures["rest"][0]) / args.active / (1024 * 1024)


if __name__ == "__main__":
    main()
