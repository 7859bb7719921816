#!/usr/bin/env python3
"""Binding overhead (issue 16): the same files transcribed by the C++ command line and by
wenet_rt.Recognizer, alternating, each run from a fresh engine (model load untimed on both sides:
the command line reports the recognition time after its load, Python times its transcribe() call,
first-use costs included on both). Prints the medians and the overhead; checks the texts agree.

  python3 scripts/binding_overhead.py MODEL_DIR --wav-scp FILE [--device cuda] [--runs 5]
"""
import argparse
import gc
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
    args = p.parse_args()
    entries = [line.split(maxsplit=1) for line in Path(args.wav_scp).read_text().splitlines() if line.strip()]
    keys, paths = [k for k, _ in entries], [v.strip() for _, v in entries]

    cli_s, py_s = [], []
    cli_text = py_text = None
    for _ in range(args.runs):
        out = subprocess.run([args.cli, "transcribe", args.model_dir, "--wav-scp", args.wav_scp, "--device",
                              args.device, "--precision", args.precision], capture_output=True, text=True, check=True)
        m = re.search(r"s of audio in ([0-9.]+) s \(\+", out.stderr)
        if not m:
            sys.exit(f"no timing in the command line's output: {out.stderr[-500:]}")
        cli_s.append(float(m.group(1)))
        cli_text = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.stdout.splitlines())

        rec = wenet_rt.Recognizer(args.model_dir, device=args.device, precision=args.precision)
        t0 = time.perf_counter()
        results = rec.transcribe(paths, keys=keys)
        py_s.append(time.perf_counter() - t0)
        py_text = {r.key: r.text for r in results}
        del rec, results
        gc.collect()

    same = sum(cli_text.get(k) == py_text.get(k) for k in keys)
    cli, py = statistics.median(cli_s), statistics.median(py_s)
    print(f"{len(keys)} files, {args.runs} runs each ({args.device} {args.precision}): command line median {cli:.4f} s "
          f"(runs {', '.join(f'{v:.4f}' for v in cli_s)}), Python median {py:.4f} s "
          f"(runs {', '.join(f'{v:.4f}' for v in py_s)}): overhead {100 * (py - cli) / cli:+.1f} %; "
          f"texts equal: {same}/{len(keys)}")


if __name__ == "__main__":
    main()
