#!/usr/bin/env python3
"""Turns a weights dump (what `wenet-rt bench --dump-model DUMP` writes: train.yaml,
units.txt, manifest.json, NAME.bin float32 per parameter) into a WeNet model dir:
train.yaml, units.txt and final.pt written by torch.save(state_dict), as WeNet's
training writes it. Serves benchmarks of tools that load model dirs (`wenet-rt
serve`, the Python package) on the bench's calibrated full-size model.

  python3 reference/dump_to_model_dir.py DUMP OUT_DIR        (needs torch, numpy)
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dump")
    p.add_argument("out")
    args = p.parse_args()
    with open(os.path.join(args.dump, "manifest.json")) as f:
        manifest = json.load(f)
    state = {}
    for name, meta in manifest.items():
        if meta.get("dtype") != "float32":
            raise SystemExit(f"{args.dump}/manifest.json: {name}: expected float32, got {meta.get('dtype')!r}")
        path = os.path.join(args.dump, name + ".bin")
        data = np.fromfile(path, dtype="<f4")
        shape = list(meta["shape"])
        if data.size != int(np.prod(shape)):
            raise SystemExit(f"{path}: {data.size} values, expected {shape}")
        state[name] = torch.from_numpy(data.reshape(shape))
    os.makedirs(args.out, exist_ok=True)
    torch.save(state, os.path.join(args.out, "final.pt"))
    for name in ("train.yaml", "units.txt"):
        shutil.copyfile(os.path.join(args.dump, name), os.path.join(args.out, name))
    print(f"{args.out}: final.pt ({len(state)} tensors), train.yaml, units.txt")


if __name__ == "__main__":
    main()
