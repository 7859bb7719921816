#!/usr/bin/env python3
"""Would FP8 (E4M3) GEMMs keep the seed's accuracy contract? (issue 17, item 5)

    python3 reference/fp8_accuracy.py [--grid 1x16,...] [--demo models/demo] [--out fp8.json]

Simulates FP8 in the project's PyTorch reference (wenet_ref, FP32 on the CPU): the inputs and
weights of the chosen linear layers are rounded to float8_e4m3fn and back (weights with a scale
per output channel, activations with one dynamic scale per call: amax / 448, the best a
calibrated per-tensor scale can do), everything else stays FP32. The same rounding to float16
(no scale) is the baseline: what the FP16 engine's GEMM inputs already lose. "fp8-rows" scales
each activation row by its own amax instead (finer than per-tensor; range, not precision).

Reported per model and grid point (bench's seeded inputs): a0 = max |a - b| and r0 = median
|a - b| / (|b| + 1e-9) of encoder_out against FP32, as `wenet-rt bench` reports them; the seed's
contract is a0 <= 3.5e-2, r0 <= 2e-3. Models: the bench's full-size conformer (random weights,
bench_peers.make_dump, seed 0) and, with --demo, the trained demo model, whose five example
files are also transcribed (attention rescoring, bench_e2e_peer's pipeline) for the WER.
Layer sets: "ffn" (the feed-forward w_1 / w_2, as the seed's INT8) and "ffn+proj" (also the
attention's q / k / v / out projections).
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "demo"))
import bench_e2e_peer  # noqa: E402
from bench_peers import (accuracy, encoder_forward, encoder_inputs, load_dump,  # noqa: E402
                         make_dump, parse_grid)
from wer import edit_distance  # noqa: E402

E4M3_MAX = 448.0
CONTRACT = {"a0": 3.5e-2, "r0": 2e-3}


def round_e4m3(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (x / scale).to(torch.float8_e4m3fn).float() * scale


def fp8_weight(w: torch.Tensor) -> torch.Tensor:
    scale = w.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / E4M3_MAX
    return round_e4m3(w, scale)


def fp8_activation(x: torch.Tensor) -> torch.Tensor:
    return round_e4m3(x, x.abs().amax().clamp_min(1e-12) / E4M3_MAX)


def fp8_row_activation(x: torch.Tensor) -> torch.Tensor:
    return round_e4m3(x, x.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / E4M3_MAX)


def fp16_round(x: torch.Tensor) -> torch.Tensor:
    return x.half().float()


def chosen_linears(model, layers: str):
    names = ("w_1", "w_2") + (("linear_q", "linear_k", "linear_v", "linear_out") if layers == "ffn+proj" else ())
    for name, mod in model.encoder.named_modules():
        if isinstance(mod, torch.nn.Linear) and name.split(".")[-1] in names:
            yield mod


@contextlib.contextmanager
def rounded_gemms(model, layers: str, fmt: str):
    """The chosen linears compute on rounded inputs and weights while inside."""
    saved = []
    for mod in chosen_linears(model, layers):
        w = fp16_round(mod.weight.data) if fmt == "fp16" else fp8_weight(mod.weight.data)
        act = {"fp16": fp16_round, "fp8": fp8_activation, "fp8-rows": fp8_row_activation}[fmt]

        def forward(x, mod=mod, w=w, act=act):
            return F.linear(act(x), w, mod.bias)

        saved.append(mod)
        mod.forward = forward
    try:
        yield len(saved)
    finally:
        for mod in saved:
            del mod.forward  # back to the class's forward


def grid_accuracy(model, grid, feat_dim, layers, fmt):
    rows = []
    with torch.no_grad():
        for batch, frames in grid:
            feats, lens = encoder_inputs(0, batch, frames, feat_dim, False)
            ref, masks = encoder_forward(model, feats, lens)
            with rounded_gemms(model, layers, fmt):
                out, _ = encoder_forward(model, feats, lens)
            a0, r0 = accuracy(out, ref, masks.squeeze(1))
            rows.append({"point": f"{batch}x{frames}", "a0": a0, "r0": r0})
    return rows


def demo_wer(model_dir, layers, fmt):
    """Word errors / words of the demo examples, the reference pipeline with rounded GEMMs."""
    examples = os.path.join(model_dir, "examples")
    with open(os.path.join(examples, "text"), encoding="utf-8") as f:
        ref = dict(ln.rstrip("\n").split(" ", 1) for ln in f if ln.strip())
    with tempfile.TemporaryDirectory() as tmp:
        files = os.path.join(tmp, "files.txt")
        with open(files, "w") as f:
            for key in sorted(ref):
                f.write(f"{key} {os.path.join(examples, key + '.wav')}\n")
        out = os.path.join(tmp, "out.json")
        original = bench_e2e_peer.load_wenet_dir

        def load(model_dir_, cfg):
            model = original(model_dir_, cfg)
            if fmt != "fp32":
                load.stack.enter_context(rounded_gemms(model, layers, fmt))
            return model

        with contextlib.ExitStack() as stack:
            load.stack = stack
            bench_e2e_peer.load_wenet_dir = load
            try:
                bench_e2e_peer.main(["--model-dir", model_dir, "--files", files, "--out", out, "--device", "cpu",
                                     "--dtype", "fp32", "--warmup-files", "0"])
            finally:
                bench_e2e_peer.load_wenet_dir = original
        with open(out, encoding="utf-8") as f:
            texts = json.load(f)["texts"]
    errors = sum(edit_distance(ref[k].split(), texts.get(k, "").split()) for k in ref)
    words = sum(len(v.split()) for v in ref.values())
    return {"word_errors": errors, "words": words, "wer": errors / words}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", default="1x16,1x64,1x256,4x16,4x64,4x256,16x16,16x64,16x256")
    p.add_argument("--config", default=os.path.join(HERE, "bench_model.yaml"))
    p.add_argument("--demo", default=None, help="the demo model dir (models/demo)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    grid = parse_grid(args.grid)
    models = []
    with tempfile.TemporaryDirectory() as tmp:
        make_dump(tmp, args.config, seed=0)
        models.append(("full-size conformer (random weights)", load_dump(tmp)))
    if args.demo:
        import yaml
        with open(os.path.join(args.demo, "train.yaml")) as f:
            cfg = yaml.safe_load(f)
        models.append((f"demo ({args.demo})", bench_e2e_peer.load_wenet_dir(args.demo, cfg)))
    results = {}
    for title, model in models:
        feat_dim = model.input_dim if hasattr(model, "input_dim") else 80
        for layers in ("ffn", "ffn+proj"):
            for fmt in ("fp16", "fp8", "fp8-rows"):
                rows = grid_accuracy(model, grid, feat_dim, layers, fmt)
                worst = {k: max(r[k] for r in rows) for k in ("a0", "r0")}
                ok = all(worst[k] <= CONTRACT[k] for k in CONTRACT)
                print(f"{title:40s} {layers:9s} {fmt}: a0 <= {worst['a0']:.2e}, r0 <= {worst['r0']:.2e} "
                      f"({'within' if ok else 'OUTSIDE'} the contract)  " +
                      " ".join(f"{r['point']} {r['r0']:.1e}" for r in rows))
                results[f"{title} / {layers} / {fmt}"] = {"points": rows, "worst": worst, "within": ok}
    if args.demo:
        for layers, fmt in (("ffn", "fp32"), ("ffn", "fp8"), ("ffn+proj", "fp8")):
            w = demo_wer(args.demo, layers, fmt)
            label = "fp32" if fmt == "fp32" else f"{layers} {fmt}"
            print(f"demo WER, {label}: {w['word_errors']}/{w['words']} = {100 * w['wer']:.2f}%")
            results[f"demo WER / {label}"] = w
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
