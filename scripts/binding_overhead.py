#!/usr/bin/env python3
"""Binding overhead (issue 16): the same files transcribed by the C++ command line and by
wenet_rt.Recognizer, alternating, each in a fresh process (model load untimed on both sides: the
command line reports the recognition time after its load, Python times its transcribe() call;
first-use costs, e.g. CUDA's, fall on both alike). Also the Python call again in the same process
(warm), which the command line cannot do. Prints the medians and the overhead; checks the texts.

  python3 scripts/binding_overhead.py MODEL_DIR --wav-scp FILE [--device cuda] [--runs 5]
"""
import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import wenet_rt

ROOT = Path(__file__).resolve().parents[1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir")
    p.add_argument("--wav-scp", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--cli", default=str(ROOT / "build" / "wenet-rt"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    entries = [line.split(maxsplit=1) for line in Path(args.wav_scp).read_text().splitlines() if line.strip()]
    keys, paths = [k for k, _ in entries], [v.strip() for _, v in entries]

    if args.child:  # one fresh process: the first call and a warm one, as JSON
        rec = wenet_rt.Recognizer(args.model_dir, device=args.device, precision=args.precision)
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            results = rec.transcribe(paths, keys=keys)
            times.append(time.perf_counter() - t0)
        print(json.dumps({"first_s": times[0], "warm_s": times[1], "texts": {r.key: r.text for r in results}}))
        return

    cli_s, py_s, warm_s = [], [], []
    cli_text = py_text = None
    for _ in range(args.runs):
        out = subprocess.run([args.cli, "transcribe", args.model_dir, "--wav-scp", args.wav_scp, "--device",
                              args.device, "--precision", args.precision], capture_output=True, text=True, check=True)
        m = re.search(r"s of audio in ([0-9.]+) s \(\+", out.stderr)
        if not m:
            sys.exit(f"no timing in the command line's output: {out.stderr[-500:]}")
        cli_s.append(float(m.group(1)))
        cli_text = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.stdout.splitlines())

        child = subprocess.run([sys.executable, __file__, "--child", args.model_dir, "--wav-scp", args.wav_scp,
                                "--device", args.device, "--precision", args.precision],
                               capture_output=True, text=True, check=True)
        report = json.loads(child.stdout)
        py_s.append(report["first_s"])
        warm_s.append(report["warm_s"])
        py_text = report["texts"]
    same = sum(cli_text.get(k) == py_text.get(k) for k in keys)
    cli, py = statistics.median(cli_s), statistics.median(py_s)
    print(f"{len(keys)} files, {args.runs} runs each ({args.device} {args.precision}): command line median {cli:.4f} s "
          f"(runs {', '.join(f'{v:.4f}' for v in cli_s)}), Python median {py:.4f} s "
          f"(runs {', '.join(f'{v:.4f}' for v in py_s)}): overhead {100 * (py - cli) / cli:+.1f} %; Python warm "
          f"(second call, same process) median {statistics.median(warm_s):.4f} s; "
          f"texts equal: {same}/{len(keys)}")


if __name__ == "__main__":
    main()
