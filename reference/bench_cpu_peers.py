#!/usr/bin/env python3
"""CPU peers of `wenet-rt bench --device cpu` (issue 13): the project's
reference model (wenet_ref) with the very weights the C++ bench uses, timed
on the CPU with the same thread count.

Bench mode (the C++ bench runs this with --device cpu --peers):
  python3 reference/bench_cpu_peers.py --dump DUMP --grid 1x64,16x256 \\
      --runs 50 --warmup 10 --threads 2 --out peers.json [--mixed-lengths]

  DUMP: as reference/bench_peers.py reads it (train.yaml, manifest.json,
  NAME.bin per parameter).

Peers (--peers, default all):
  ort_fp32   ONNX Runtime, the reference encoder (+ CTC log-softmax and its
             top-10) exported with torch.onnx.export (dynamic batch and
             frames), all graph optimizations on.
  ort_int8   the same graph through onnxruntime.quantization.quantize_dynamic
             as WeNet's own CPU export (wenet/bin/export_onnx_cpu.py) calls
             it: MatMul weights per output channel, reduce_range off; int8
             weights (QInt8: u8 x s8, what x86 VNNI multiplies; WeNet writes
             QUInt8, --ort-weight-type quint8), activations quantized per
             tensor at run time.
  torch_fp32 PyTorch eager, the same forward, under torch.inference_mode.
The decoder part (--parts encoder,decoder) runs the same peers on the seed's
decoder input (bench_peers.py's decoder_step: B x 10 hypotheses of 64 tokens,
log-softmax over the vocabulary and its argmax).

Threads: --threads N (default: the CPUs this process may run on, as the C++
CPU backend picks) sets ORT's intra-op threads (inter-op 1, sequential) and
torch.set_num_threads; OMP/MKL variables are set before torch is imported.
Timing: wall clock per call (time.perf_counter), after warm-up; median and
p90 in ms. Accuracy of output 0 (encoder_out on valid frames; decoder
log-probs) vs torch_fp32 on the same inputs: a0 = max |a-b|, r0 = median
|a-b| / (|b| + 1e-9). The JSON (same layout as bench_peers.py's) is rewritten
after every point.
"""

import argparse
import os
import sys
import tempfile


def _threads_from_argv(argv) -> int:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return len(os.sched_getaffinity(0))


# Thread pools read these when the libraries load: set before importing them.
_THREADS = _threads_from_argv(sys.argv[1:])
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = str(_THREADS)

import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Callable, List  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import (NUM_HYPS, TOPK, accuracy, decoder_forward,  # noqa: E402
                         decoder_inputs, decoder_step, encoder_forward,
                         encoder_inputs, load_dump, parse_grid)

PEERS = ("ort_fp32", "ort_int8", "torch_fp32")


class EncoderStep(torch.nn.Module):
    """What the C++ bench times as `encoder`: encoder_out and CTC log-probs
    (plus their top-10, as the GPU peers)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, feats, lens):
        enc, masks = encoder_forward(self.model, feats, lens)
        logp = torch.log_softmax(self.model.ctc.ctc_lo(enc), dim=-1)
        top_val, top_idx = torch.topk(logp, TOPK, dim=-1)
        return enc, logp, top_val, top_idx, masks.squeeze(1)


class DecoderStep(torch.nn.Module):
    """bench_peers.decoder_step as a module: log-probs and their argmax."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, memory, memory_lens, hyps, hyps_lens):
        return decoder_step(self.model, memory, memory_lens, hyps, hyps_lens)


def export_onnx(module: torch.nn.Module, args, names_in, names_out, dynamic,
                path: str) -> None:
    kwargs = dict(input_names=names_in, output_names=names_out,
                  dynamic_axes=dynamic, opset_version=17)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on Python-side shape checks
        try:  # the TorchScript exporter (torch >= 2.5 defaults to dynamo)
            torch.onnx.export(module, args, path, dynamo=False, **kwargs)
        except TypeError:
            torch.onnx.export(module, args, path, **kwargs)


def quantize(src: str, dst: str, weight_type: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" advice
    quantize_dynamic(model_input=src, model_output=dst,
                     op_types_to_quantize=["MatMul"], per_channel=True,
                     reduce_range=False,
                     weight_type=(QuantType.QUInt8 if weight_type == "quint8"
                                  else QuantType.QInt8))


def ort_session(path: str, threads: int):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def time_runs(fn: Callable[[], object], runs: int, warmup: int) -> List[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


class Bench:

    def __init__(self, args, model):
        self.args = args
        self.model = model
        self.points: List[dict] = []
        self.notes: List[str] = []
        self.sessions = {}
        self.d = model.ctc.ctc_lo.in_features

    def write(self) -> None:
        import onnxruntime as ort
        doc = {"device": "cpu", "torch": torch.__version__,
               "onnxruntime": ort.__version__,
               "settings": {"runs": self.args.runs, "warmup": self.args.warmup,
                            "threads": self.args.threads,
                            "mixed_lengths": self.args.mixed_lengths,
                            "seed": self.args.seed,
                            "ort_weight_type": self.args.ort_weight_type},
               "points": self.points, "notes": self.notes}
        tmp = self.args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, self.args.out)

    def record(self, part, peer, batch, frames, times, out0, ref0, valid):
        med = float(np.median(times))
        a0, r0 = accuracy(torch.as_tensor(out0), ref0, valid)
        self.points.append({
            "batch": batch, "frames": frames, "part": part, "peer": peer,
            "median_ms": med, "p90_ms": float(np.percentile(times, 90)),
            "throughput": batch * frames / (med / 1e3), "a0": a0, "r0": r0,
            "threads": self.args.threads})
        self.write()
        print(f"{part:8s} {batch:3d}x{frames:<5d} {peer:11s} median "
              f"{med:9.3f} ms  p90 {self.points[-1]['p90_ms']:9.3f} ms  "
              f"a0 {a0:.3e}  r0 {r0:.3e}", file=sys.stderr)

    def prepare(self, part: str, tmp: str) -> None:
        """Exports (and quantizes) the part once; dynamic batch and frames."""
        if not any(p.startswith("ort") for p in self.args.peers):
            return
        path = os.path.join(tmp, f"{part}.onnx")
        if part == "encoder":
            feats, lens = encoder_inputs(0, 2, 64, self.model.input_dim, False)
            export_onnx(EncoderStep(self.model), (feats, lens),
                        ["feats", "lens"],
                        ["encoder_out", "logp", "top_val", "top_idx", "valid"],
                        {"feats": {0: "B", 1: "T"}, "lens": {0: "B"},
                         "encoder_out": {0: "B", 1: "T2"},
                         "logp": {0: "B", 1: "T2"},
                         "top_val": {0: "B", 1: "T2"},
                         "top_idx": {0: "B", 1: "T2"},
                         "valid": {0: "B", 1: "T2"}}, path)
        else:
            m = self.model
            memory, mem_lens, hyps, hyps_lens = decoder_inputs(
                0, 1, 64, self.d, m.vocab_size, m.sos, m.eos, False)
            export_onnx(DecoderStep(m), (memory, mem_lens, hyps, hyps_lens),
                        ["memory", "memory_lens", "hyps", "hyps_lens"],
                        ["logp", "best"],
                        {"memory": {0: "B", 1: "T"}, "memory_lens": {0: "B"},
                         "hyps": {0: "B"}, "hyps_lens": {0: "BN"},
                         "logp": {0: "BN"}, "best": {0: "BN"}}, path)
        if "ort_fp32" in self.args.peers:
            self.sessions[(part, "ort_fp32")] = ort_session(
                path, self.args.threads)
        if "ort_int8" in self.args.peers:
            qpath = os.path.join(tmp, f"{part}.int8.onnx")
            quantize(path, qpath, self.args.ort_weight_type)
            self.sessions[(part, "ort_int8")] = ort_session(
                qpath, self.args.threads)

    def run_point(self, part: str, batch: int, frames: int) -> None:
        m = self.model
        if part == "encoder":
            feats, lens = encoder_inputs(self.args.seed, batch, frames,
                                         m.input_dim, self.args.mixed_lengths)
            inputs = (feats, lens)
            feed = {"feats": feats.numpy(), "lens": lens.numpy()}
            step = EncoderStep(m)
        else:
            memory, mem_lens, hyps, hyps_lens = decoder_inputs(
                self.args.seed, batch, frames, self.d, m.vocab_size, m.sos,
                m.eos, self.args.mixed_lengths)
            inputs = (memory, mem_lens, hyps, hyps_lens)
            feed = {"memory": memory.numpy(), "memory_lens": mem_lens.numpy(),
                    "hyps": hyps.numpy(), "hyps_lens": hyps_lens.numpy()}
            step = DecoderStep(m)
        with torch.inference_mode():
            ref = step(*inputs)
        ref0 = ref[0]
        valid = ref[4] if part == "encoder" else None

        if "torch_fp32" in self.args.peers:
            out = {}

            def run():
                with torch.inference_mode():
                    out["r"] = step(*inputs)
            times = time_runs(run, self.args.runs, self.args.warmup)
            self.record(part, "torch_fp32", batch, frames, times,
                        out["r"][0], ref0, valid)
        for peer in ("ort_fp32", "ort_int8"):
            sess = self.sessions.get((part, peer))
            if sess is None:
                continue
            out = {}

            def run_ort():
                out["r"] = sess.run(None, feed)
            try:
                times = time_runs(run_ort, self.args.runs, self.args.warmup)
            except Exception as e:  # noqa: BLE001 - a failing peer is a note
                self.note(f"{peer} {part} {batch}x{frames} skipped: "
                          f"{str(e).splitlines()[0][:300]}")
                continue
            self.record(part, peer, batch, frames, times,
                        out["r"][0], ref0, valid)

    def note(self, text: str) -> None:
        print(f"note: {text}", file=sys.stderr)
        self.notes.append(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dump", required=True, help="weights dump dir")
    p.add_argument("--grid", default="1x64,1x256,1x1000,4x256,16x256",
                   help="comma-separated BATCHxFRAMES points")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=_THREADS,
                   help="threads of every peer (default: the CPUs this "
                        "process may run on)")
    p.add_argument("--out", default="cpu_peers.json")
    p.add_argument("--mixed-lengths", action="store_true",
                   help="lengths linear from T down to T/2 across the batch")
    p.add_argument("--parts", default="encoder,decoder")
    p.add_argument("--peers", default=",".join(PEERS),
                   help="subset of " + ",".join(PEERS))
    p.add_argument("--ort-weight-type", choices=("qint8", "quint8"),
                   default="qint8")
    p.add_argument("--seed", type=int, default=0)
    # accepted for the GPU peers' command line, unused on the CPU
    p.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0 or args.threads < 1:
        p.error("expected --runs >= 1, --warmup >= 0 and --threads >= 1")
    args.peers = [x.strip() for x in args.peers.split(",") if x.strip()]
    for peer in args.peers:
        if peer not in PEERS:
            p.error(f"--peers: expected names from {PEERS}, got {peer!r}")
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    for part in parts:
        if part not in ("encoder", "decoder"):
            p.error(f"--parts: expected encoder/decoder, got {part!r}")
    grid = parse_grid(args.grid)

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    model = load_dump(args.dump)
    bench = Bench(args, model)
    bench.write()
    with tempfile.TemporaryDirectory() as tmp:
        for part in parts:
            bench.prepare(part, tmp)
            for batch, frames in grid:
                bench.run_point(part, batch, frames)
    bench.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
