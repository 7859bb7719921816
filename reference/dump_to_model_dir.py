#!/usr/bin/env python3
"""Turns a weights dump (what `wenet-rt bench --dump-model DUMP` writes: train.yaml,
units.txt, manifest.json, NAME.bin float32 per parameter) into a WeNet model dir:
train.yaml, units.txt and final.pt written by torch.save(state_dict), as WeNet's
training writes it. Serves benchmarks of tools that load model dirs (`wenet-rt
serve`, the Python package) on the bench's calibrated full-size model.

  python3 reference/dump_to_model_dir.py DUMP OUT_DIR        (needs torch, numpy)
"""
import argparse
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import read_dump  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dump")
    p.add_argument("out")
    args = p.parse_args()
    state = read_dump(args.dump)
    os.makedirs(args.out, exist_ok=True)
    torch.save(state, os.path.join(args.out, "final.pt"))
    for name in ("train.yaml", "units.txt"):
        shutil.copyfile(os.path.join(args.dump, name), os.path.join(args.out, name))
    print(f"{args.out}: final.pt ({len(state)} tensors), train.yaml, units.txt")


if __name__ == "__main__":
    main()
