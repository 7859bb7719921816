#!/usr/bin/env python3
"""Binding overhead (issue 16): the same files transcribed by the C++ tools and by
wenet_rt.Recognizer, alternating, each side in a fresh process per run (model load untimed).
Two comparisons:
  steady state: `wenet-rt bench --e2e --files ...` (the end-to-end benchmark: one warm-up call on
    64 files, then all files timed inside the engine) against Python doing the same (warm-up
    transcribe() of 64 files, then transcribe() of all, timed around the call: conversion to
    Python objects included; a process of its own, as the benchmark's);
  first call: `wenet-rt transcribe` (its recognition time after loading) against Python's first
    transcribe() (first-use costs, e.g. CUDA's, fall on both).
Prints medians and overheads; checks that the texts equal the command line's.

  python3 scripts/binding_overhead.py MODEL_DIR --wav-scp FILE [--device cuda] [--runs 5]
"""
import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
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
    p.add_argument("--child", choices=("first", "steady"), help=argparse.SUPPRESS)
    args = p.parse_args()
    entries = [line.split(maxsplit=1) for line in Path(args.wav_scp).read_text().splitlines() if line.strip()]
    keys, paths = [k for k, _ in entries], [v.strip() for _, v in entries]

    if args.child:  # one fresh process: the first call, or the benchmark's warm-up then its timed call; JSON
        rec = wenet_rt.Recognizer(args.model_dir, device=args.device, precision=args.precision)
        if args.child == "steady":
            rec.transcribe(paths[:64], keys=keys[:64])
        t0 = time.perf_counter()
        results = rec.transcribe(paths, keys=keys)
        print(json.dumps({"seconds": time.perf_counter() - t0, "texts": {r.key: r.text for r in results}}))
        return

    times = {"bench": [], "transcribe": [], "python_first": [], "python_warm": []}
    cli_text = py_text = {}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "bench.json"
        for _ in range(args.runs):
            subprocess.run([args.cli, "bench", args.model_dir, "--e2e", "--device", args.device, "--precision",
                            args.precision, "--json", str(report), "--files", *paths], capture_output=True, check=True)
            times["bench"].append(next(r["wall_s"] for r in json.loads(report.read_text())["runs"]
                                       if r["mode"] == "attention_rescoring"))
            out = subprocess.run([args.cli, "transcribe", args.model_dir, "--wav-scp", args.wav_scp, "--device",
                                  args.device, "--precision", args.precision], capture_output=True, text=True, check=True)
            m = re.search(r"s of audio in ([0-9.]+) s \(\+", out.stderr)
            if not m:
                sys.exit(f"no timing in the command line's output: {out.stderr[-500:]}")
            times["transcribe"].append(float(m.group(1)))
            cli_text = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.stdout.splitlines())
            for phase, key in (("first", "python_first"), ("steady", "python_warm")):
                child = json.loads(subprocess.run([sys.executable, __file__, "--child", phase, args.model_dir,
                                                   "--wav-scp", args.wav_scp, "--device", args.device,
                                                   "--precision", args.precision],
                                                  capture_output=True, text=True, check=True).stdout)
                times[key].append(child["seconds"])
                py_text = child["texts"]
    med = {k: statistics.median(v) for k, v in times.items()}
    runs = {k: ", ".join(f"{x:.4f}" for x in v) for k, v in times.items()}
    overhead = lambda py, cli: f"{100 * (med[py] - med[cli]) / med[cli]:+.1f} %"
    same = sum(cli_text.get(k) == py_text.get(k) for k in keys)
    print(f"{len(keys)} files, {args.runs} runs each ({args.device} {args.precision}), medians:\n"
          f"  steady state: bench --e2e {med['bench']:.4f} s ({runs['bench']}), Python warm call "
          f"{med['python_warm']:.4f} s ({runs['python_warm']}): overhead {overhead('python_warm', 'bench')}\n"
          f"  first call: transcribe {med['transcribe']:.4f} s ({runs['transcribe']}), Python "
          f"{med['python_first']:.4f} s ({runs['python_first']}): overhead {overhead('python_first', 'transcribe')}\n"
          f"  texts equal to the command line's: {same}/{len(keys)}")


if __name__ == "__main__":
    main()
