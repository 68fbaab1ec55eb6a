#!/usr/bin/env python3
"""Instructions nano executes per request, for two binaries, counted by callgrind.

Wall-clock and CPU-time figures on these shared machines swing by 10% from round to round, too
much to see a 2% change. An instruction count does not depend on the machine's load: each binary
serves one hello app (one worker, context reset on) under `valgrind --tool=callgrind`, once with
SHORT requests and once with LONG; the difference divided by LONG - SHORT is the cost of one
request, start-up excluded. Repeated runs agree to about 0.1%.

Usage: bench/instructions.py --nano NEW --baseline OLD [--short 520] [--long 1020] [--app module.js]
           [--keep DIR]   (keeps the callgrind files, for callgrind_annotate)
           [--floor target/release/examples/context_cost] [--floor-flags "V8 flags"]

--floor also counts the floor of a context reset the same way: V8's own empty `Context::new`
(the `context_cost` example, SHORT and then LONG contexts), and prints each build's
instructions per request as a multiple of it. --floor-flags gives that empty context V8 flags
(say the language flags nano sets, `isolate::V8_FLAGS`), for a floor with the same built-ins.

Needs valgrind (apt-get install valgrind). Each run takes about a minute.
"""

import http.client
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

from common import HELLO, ROOT, body, comparison_parser, free_port



def count(nano, app, requests, keep, worker_only=False):
    """Instructions callgrind counted over start-up, `requests` requests and shutdown (with
    `worker_only`, only those of the app's worker thread)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        config = work / "nano.json"
        config.write_text(json.dumps({
            "server": {"host": "127.0.0.1", "port": port},
            # Under valgrind everything is ~50x slower: the limits must not end the requests.
            "apps": [{"hostname": "bench.local", "entrypoint": str(app),
                      "limits": {"workers": 1, "timeout_secs": 600, "cpu_ms": 60000}}],
            "slivers": {"cache_dir": str(work / "cache")},
        }))
        out = work / "callgrind.out"
        log = work / "valgrind.log"
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--smc-check=all-non-file",
             *(["--collect-atstart=no", "--toggle-collect=*run_worker*"] if worker_only else []),
             f"--callgrind-out-file={out}", nano, "--config", config],
            stdout=subprocess.DEVNULL, stderr=log.open("w"),
            env={"NANO_LOG": "warn", "PATH": "/usr/bin:/bin"})
        try:
            deadline = time.time() + 300
            while body(port, "bench.local") is None:
                if proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"{nano} did not start under valgrind:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            for _ in range(requests - 1):  # one went to the start-up check
                conn.request("GET", "/", headers={"Host": "bench.local"})
                response = conn.getresponse()
                response.read()
                assert response.status == 200, response.status
        finally:
            proc.terminate()
            proc.wait()
        if keep:
            shutil.copy(out, pathlib.Path(keep) / f"{pathlib.Path(nano).name}-{requests}.out")
        found = re.search(r"Collected : (\d+)", log.read_text())
        if not found:
            raise SystemExit(f"no callgrind total in the log:\n{log.read_text()[-3000:]}")
        return int(found.group(1))


def count_floor(example, contexts, flags=""):
    """Instructions callgrind counted for the context_cost example making `contexts` contexts."""
    with tempfile.TemporaryDirectory() as work:
        log = pathlib.Path(work) / "valgrind.log"
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--smc-check=all-non-file",
             f"--callgrind-out-file={pathlib.Path(work) / 'callgrind.out'}",
             example, str(contexts), "1", *flags.split()],
            stdout=subprocess.DEVNULL, stderr=log.open("w"), check=True)
        found = re.search(r"Collected : (\d+)", log.read_text())
        if not found:
            raise SystemExit(f"no callgrind total in the log:\n{log.read_text()[-3000:]}")
        return int(found.group(1))


def main():
    parser = comparison_parser()
    parser.add_argument("--short", type=int, default=520)
    parser.add_argument("--long", type=int, default=1020)
    parser.add_argument("--app", default=str(HELLO))
    parser.add_argument("--keep")
    parser.add_argument("--floor")
    parser.add_argument("--floor-flags", default="")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: apt-get install valgrind")
    per_request = {}
    for label, nano in (("baseline", args.baseline), ("new", args.nano)):
        short = count(nano, args.app, args.short, args.keep)
        long = count(nano, args.app, args.long, args.keep)
        per_request[label] = (long - short) / (args.long - args.short)
        print(f"{label}: {short} instructions for {args.short} requests, {long} for {args.long}")
    base, new = per_request["baseline"], per_request["new"]
    floor = None
    if args.floor:
        short = count_floor(args.floor, args.short, args.floor_flags)
        long = count_floor(args.floor, args.long, args.floor_flags)
        floor = (long - short) / (args.long - args.short)
        print(f"floor: {short} instructions for {args.short} contexts, {long} for {args.long}")
    print()
    print("| build | instructions per request | ratio |" + (" vs `Context::new` |" if floor else ""))
    print("| --- | ---: | ---: |" + (" ---: |" if floor else ""))
    for label, figure in (("baseline", base), ("new", new)):
        row = f"| {label} | {figure / 1e6:.3f} M | {figure / base:.3f} |"
        print(row + (f" {figure / floor:.2f} |" if floor else ""))
    if floor:
        print(f"| `Context::new` (floor) | {floor / 1e6:.3f} M | | 1.00 |")


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
