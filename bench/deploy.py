#!/usr/bin/env python3
"""Deploy-to-serving: a control plane and two data planes on loopback (release builds), 20
deploys of a hello app, each a new version. For every deploy, two figures:

  served    from starting `nanoctl deploy` until both nodes answer the new version over HTTP
            (polled every 2 ms by this script; includes building the sliver)
  nanoctl   how long `nanoctl deploy` took (it returns once both nodes report the version)

The baseline measured in the same run is `nanoctl apps` (process start, connect, one call):
what any nanoctl command costs before it does anything.

With --app MODULE (e.g. the Hono bundle, tests/frameworks/dist/hono-app.js) each deploy is that
module plus a comment naming the deploy (so every deploy is a new sliver, prepared from source);
only the `nanoctl deploy` figure is measured then, since the app's answer does not name its
version.

Usage: bench/deploy.py [--deploys N] [--app MODULE]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

from common import BIN, FLEET_ENV, NODE, OPERATOR, free_port, pct, start_control_plane, wait, wait_answer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--deploys", type=int, default=20)
    parser.add_argument("--app", type=pathlib.Path)
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="nano-deploy-bench-"))
    env = FLEET_ENV
    control_plane, url = start_control_plane(work / "cp")
    procs = [control_plane]
    ctl_env = dict(os.environ, NANO_SERVER=url, NANO_TOKEN=OPERATOR)
    ports = []
    try:
        time.sleep(0.3)
        for name in ["a", "b"]:
            port = free_port()
            ports.append(port)
            config = {"server": {"host": "127.0.0.1", "port": port},
                      "control_plane": {"url": url, "token": NODE, "node_id": f"node-{name}",
                                        "cache_dir": str(work / name)}}
            path = work / f"{name}.json"
            path.write_text(json.dumps(config))
            procs.append(subprocess.Popen([BIN / "nano", "--config", path], env=env,
                                          stderr=subprocess.DEVNULL))

        def connected():
            out = subprocess.run([BIN / "nanoctl", "nodes", "-o", "json"], env=ctl_env,
                                 capture_output=True, text=True)
            return out.returncode == 0 and out.stdout.count('"connected":true') == 2
        wait(connected, "both nodes to connect")

        host = "bench.deploy.test"
        served, ctl, baseline = [], [], []
        for i in range(args.deploys):
            began = time.perf_counter()
            subprocess.run([BIN / "nanoctl", "apps"], env=ctl_env, capture_output=True,
                           check=True)
            baseline.append(time.perf_counter() - began)

            app = work / "app.js"
            marker = f"version {i}"
            if args.app:
                app.write_text(args.app.read_text() + f"\n// {marker}\n")
            else:
                app.write_text("export default { fetch() { return new Response(%s); } }\n"
                               % json.dumps(marker))
            began = time.perf_counter()
            deploy = subprocess.Popen([BIN / "nanoctl", "deploy", app, "--hostname", host],
                                      env=ctl_env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
            wait_answer([] if args.app else ports, host, marker)
            served.append(time.perf_counter() - began)
            _, err = deploy.communicate()
            if deploy.returncode != 0:
                raise SystemExit(f"nanoctl deploy failed: {err.decode()}")
            ctl.append(time.perf_counter() - began)

        ms = lambda v: f"{v * 1000:.0f} ms"
        what = args.app.name if args.app else "hello"
        print(f"{args.deploys} deploys of {what}, 2 nodes, loopback, release builds")
        print("| measure | p50 | p90 | max | p50 vs baseline |")
        print("| --- | ---: | ---: | ---: | ---: |")
        base = statistics.median(baseline)
        rows = [("`nanoctl deploy` returns", ctl), ("baseline: `nanoctl apps`", baseline)]
        if not args.app:
            rows.insert(0, ("both nodes answer the new version", served))
        for name, values in rows:
            print(f"| {name} | {ms(pct(values, 50))} | {ms(pct(values, 90))} | "
                  f"{ms(max(values))} | {statistics.median(values) / base:.1f}x |")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()


if __name__ == "__main__":
    main()
