#!/usr/bin/env python3
"""PyTorch peers of `wenet-rt bench` (issue 5): the project's reference model
(wenet_ref) with the very weights the C++ bench uses, timed on the same GPU.

Bench mode (the C++ bench runs this):
  python3 reference/bench_peers.py --dump DUMP --grid 1x16,4x64,16x256 \\
      --runs 50 --warmup 10 --out peers.json [--compile] [--mixed-lengths]

  DUMP holds train.yaml (WeNet layout), manifest.json ({NAME: {shape, dtype}},
  NAME = WeNet state-dict key) and NAME.bin (raw little-endian float32,
  row-major): every parameter and BatchNorm running stat; no `pe` tables, no
  num_batches_tracked; global_cmvn buffers optional (absent = identity).

Test mode (no C++ needed): write a dump of a seeded randomly initialized model
  python3 reference/bench_peers.py --make-dump DUMP \\
      --config reference/bench_model.yaml --seed 0

Per grid point BxT (batch x input frames):
  encoder: fbank B x T x 80 (seeded randn) with lengths T (or, with
    --mixed-lengths, spread linearly from T down to T/2) -> encoder_out, CTC
    log-probs and their top-10 (torch.topk), all of it timed.
  decoder, as the seed ran it: encoder_out B x T x d (seeded randn, lengths as
    above), hyps_pad_sos_eos B x 10 x 64 (<sos>, 62 random tokens, <eos>);
    memory repeated per hypothesis (WeNet's forward_attention_decoder),
    decoder on hyps[:, :, :63] with lengths 63 -> log-softmax B*10 x 63 x V
    and its argmax, all of it timed.
Peers: torch_fp32 (eager), torch_fp16 (eager, model.half()), torch_fp16_graph
  (fp16 under one captured torch.cuda.CUDAGraph) and, with --compile,
  torch_compile_fp16 (torch.compile mode reduce-overhead) and
  torch_compile_max_autotune_fp16 (mode max-autotune: Triton / GEMM autotuning
  plus CUDA graphs; minutes a point). Each is compiled afresh for every shape;
  compiling, autotuning and the first calls are not timed. A point is skipped
  when compiling fails or takes longer than --compile-timeout seconds
  (--autotune-timeout for max-autotune).
Timing: CUDA events around each run (synchronized after each, so a run is one
  request's latency), after warm-up; median and p90 in ms; throughput =
  B*T / latency in seconds. Accuracy of output 0 (encoder_out on valid
  frames; decoder log-probs everywhere) vs torch_fp32 for the same inputs:
  a0 = max |a-b|, r0 = median |a-b| / (|b| + 1e-9).
FP32 runs without TF32 (a true FP32 reference) unless --tf32.
--save-io DIR writes each point's inputs and FP32 outputs (manifest.json +
  NAME.bin) so an engine can be checked against this reference directly.
The JSON is rewritten after every point, so a run cut short keeps its points.
"""

import argparse
import copy
import json
import os
import shutil
import signal
import sys
import time
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wenet_ref.goldens_io import write_goldens  # noqa: E402
from wenet_ref.model import (BiTransformerDecoder, WenetModel,  # noqa: E402
                             from_config)

NUM_HYPS = 10
HYP_WIDTH = 64  # <sos> + 62 tokens + <eos>
TOPK = 10
PEERS = ("torch_fp32", "torch_fp16", "torch_fp16_graph", "torch_compile_fp16",
         "torch_compile_max_autotune_fp16")
# torch.compile peers: name -> mode (run with --compile)
COMPILE_MODES = {"torch_compile_fp16": "reduce-overhead",
                 "torch_compile_max_autotune_fp16": "max-autotune"}


# --------------------------------------------------------------------------
# Weights dump: read and write
# --------------------------------------------------------------------------

def _not_in_dump(name: str) -> bool:
    """State-dict entries a dump leaves out: position tables (recomputed),
    BatchNorm batch counters, CMVN (identity unless given)."""
    return (name.endswith(".pe") or name.endswith("num_batches_tracked") or
            ".global_cmvn." in name)


def read_dump(dump_dir: str) -> dict:
    """manifest.json + NAME.bin -> {name: float32 tensor}. A dtype other than
    float32 or a file of the wrong size is an error naming it."""
    with open(os.path.join(dump_dir, "manifest.json")) as f:
        manifest = json.load(f)
    tensors = {}
    for name, meta in manifest.items():
        if meta.get("dtype") != "float32":
            raise ValueError(f"{dump_dir}/manifest.json: {name}: expected "
                             f"dtype float32, got {meta.get('dtype')!r}")
        shape = list(meta["shape"])
        path = os.path.join(dump_dir, name + ".bin")
        data = np.fromfile(path, dtype="<f4")
        if data.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: expected {int(np.prod(shape))} float32 "
                             f"values, got {data.size}")
        tensors[name] = torch.from_numpy(data.reshape(shape).copy())
    return tensors


def load_dump(dump_dir: str) -> WenetModel:
    """train.yaml + manifest.json + NAME.bin -> reference model (CPU, fp32).
    Strict: an unknown name, a wrong shape or dtype, a short file or a
    missing parameter is an error naming it."""
    cfg_path = os.path.join(dump_dir, "train.yaml")
    with open(cfg_path) as f:
        cfg = yaml.safe_load(f)
    model = from_config(cfg)  # CMVN, where the config asks for it: identity
    state = model.state_dict()
    loaded = read_dump(dump_dir)
    for name, t in loaded.items():
        if name not in state:
            raise ValueError(f"{dump_dir}/manifest.json: {name!r} is not a "
                             f"parameter of the model of {cfg_path}")
        if list(t.shape) != list(state[name].shape):
            raise ValueError(f"{dump_dir}/manifest.json: {name}: expected "
                             f"shape {list(state[name].shape)}, got {list(t.shape)}")
    missing = [n for n in state if n not in loaded and not _not_in_dump(n)]
    if missing:
        raise ValueError(f"{dump_dir}: missing {len(missing)} parameter(s), "
                         f"first {missing[0]!r}")
    model.load_state_dict(loaded, strict=False)
    model.input_dim = int(cfg["input_dim"])
    return model.eval()


def make_dump(dump_dir: str, config_path: str, seed: int) -> None:
    """A seeded randomly initialized reference model, written as the C++
    bench writes its dump. BatchNorm statistics and the relative-position
    biases are randomized too (their defaults are trivial)."""
    with open(config_path) as f:
        cfg = yaml.safe_load(f)
    torch.manual_seed(seed)
    model = from_config(cfg)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_mean") or ".pos_bias_" in name:
                t.copy_(torch.randn_like(t) * 0.1)
            elif name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
    os.makedirs(dump_dir, exist_ok=True)
    shutil.copyfile(config_path, os.path.join(dump_dir, "train.yaml"))
    manifest = {}
    for name, t in model.state_dict().items():
        if _not_in_dump(name):
            continue
        arr = np.ascontiguousarray(t.detach().float().numpy().astype("<f4"))
        arr.tofile(os.path.join(dump_dir, name + ".bin"))
        manifest[name] = {"shape": list(arr.shape), "dtype": "float32"}
    with open(os.path.join(dump_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {len(manifest)} tensors to {dump_dir}", file=sys.stderr)


# --------------------------------------------------------------------------
# Forward passes with every mask built on the inputs' device
# --------------------------------------------------------------------------
# wenet_ref builds its masks with CPU tensors (torch.arange, torch.ones),
# which fail against CUDA inputs and cannot be captured in a CUDA graph.
# These mirror Encoder.forward / TransformerDecoder.forward on the same
# submodules; check_forwards() proves they agree with model.encode/decode.

def pad_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """True at padded positions, (B, max_len)."""
    idx = torch.arange(max_len, device=lengths.device)
    return idx.unsqueeze(0) >= lengths.unsqueeze(1)


def encoder_forward(model: WenetModel, xs: torch.Tensor,
                    xs_lens: torch.Tensor):
    enc = model.encoder
    masks = ~pad_mask(xs_lens, xs.size(1)).unsqueeze(1)  # (B, 1, T)
    if enc.global_cmvn is not None:
        xs = enc.global_cmvn(xs)
    xs, pos_emb, masks = enc.embed(xs, masks)
    att_mask = masks
    if not enc.use_dynamic_chunk and enc.static_chunk_size > 0:
        idx = torch.arange(xs.size(1), device=xs.device)
        chunk = enc.static_chunk_size
        ending = torch.clamp((idx // chunk + 1) * chunk, max=xs.size(1))
        att_mask = masks & (idx.unsqueeze(0) < ending.unsqueeze(1))
    for layer in enc.encoders:
        xs = layer(xs, att_mask, pos_emb, masks)
    if enc.normalize_before:
        xs = enc.after_norm(xs)
    return xs, masks


def left_decoder(model: WenetModel):
    if isinstance(model.decoder, BiTransformerDecoder):
        return model.decoder.left_decoder
    return model.decoder


def decoder_forward(model: WenetModel, memory: torch.Tensor,
                    memory_mask: torch.Tensor, ys_in: torch.Tensor,
                    ys_lens: torch.Tensor) -> torch.Tensor:
    """Left-to-right decoder logits (N, L, V)."""
    dec = left_decoder(model)
    length = ys_in.size(1)
    tgt_mask = ~pad_mask(ys_lens, length).unsqueeze(1)  # (N, 1, L)
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool,
                                   device=ys_in.device))
    tgt_mask = tgt_mask & causal.unsqueeze(0)
    x, _ = dec.embed[1](dec.embed[0](ys_in))
    for layer in dec.decoders:
        x = layer(x, tgt_mask, memory, memory_mask)
    if dec.normalize_before:
        x = dec.after_norm(x)
    return dec.output_layer(x)


def encoder_step(model: WenetModel, feats: torch.Tensor,
                 lens: torch.Tensor):
    """The timed encoder work: encoder_out, CTC log-probs, their top-10."""
    enc, _ = encoder_forward(model, feats, lens)
    logp = torch.log_softmax(model.ctc.ctc_lo(enc), dim=-1)
    top_val, top_idx = torch.topk(logp, TOPK, dim=-1)
    return enc, logp, top_val, top_idx


def decoder_step(model: WenetModel, memory: torch.Tensor,
                 memory_lens: torch.Tensor, hyps: torch.Tensor,
                 hyps_lens: torch.Tensor):
    """The timed decoder work, as the seed ran it: hyps (B, H, 64) with
    <sos>..<eos>; memory (B, T, d) repeated per hypothesis; log-softmax over
    the vocabulary for inputs hyps[:, :, :63] and the best token."""
    b, h, w = hyps.shape
    t, d = memory.size(1), memory.size(2)
    ys_in = hyps[:, :, :w - 1].reshape(b * h, w - 1)
    # a real copy per hypothesis, as WeNet's encoder_out.repeat(...)
    mem = memory.unsqueeze(1).expand(b, h, t, d).reshape(b * h, t, d)
    mem_mask = (~pad_mask(memory_lens, t)).unsqueeze(1).expand(b, h, t)
    mem_mask = mem_mask.reshape(b * h, 1, t)
    logits = decoder_forward(model, mem, mem_mask, ys_in, hyps_lens)
    logp = torch.log_softmax(logits, dim=-1)
    return logp, logp.argmax(dim=-1)


def check_forwards(model: WenetModel) -> None:
    """This script's forwards vs the reference's own encode/decode (CPU,
    fp32, small shapes, mixed lengths). A mismatch is an error."""
    gen = torch.Generator().manual_seed(1234)
    feats = torch.randn(2, 40, model.input_dim, generator=gen)
    lens = torch.tensor([40, 29])
    with torch.inference_mode():
        mine, masks = encoder_forward(model, feats, lens)
        ref, ref_lens = model.encode(feats, lens)
        valid = masks.squeeze(1)
        if not torch.equal(valid.sum(1), ref_lens):
            raise RuntimeError("check_forwards: encoder lengths differ")
        diff = (mine - ref)[valid].abs().max().item()
        if diff > 1e-5:
            raise RuntimeError(f"check_forwards: encoder differs by {diff}")
        v = model.vocab_size
        hyps = torch.randint(1, max(v - 1, 2), (3, 7), generator=gen)
        hyps[:, 0] = model.sos
        hyps_lens = torch.tensor([7, 5, 3])
        mem = mine[:1, :int(ref_lens[0])]
        mem_lens = torch.tensor([mem.size(1)])
        ref_lp = model.decode(mem, mem_lens, hyps, hyps_lens)
        mem_mask = (~pad_mask(mem_lens, mem.size(1))).unsqueeze(1)
        my_lp = torch.log_softmax(decoder_forward(
            model, mem.expand(3, -1, -1), mem_mask.expand(3, -1, -1), hyps,
            hyps_lens), dim=-1)
        diff = (my_lp - ref_lp).abs().max().item()
        if diff > 1e-4:
            raise RuntimeError(f"check_forwards: decoder differs by {diff}")


# --------------------------------------------------------------------------
# Inputs, timing, accuracy
# --------------------------------------------------------------------------

def spread_lengths(batch: int, frames: int, mixed: bool) -> torch.Tensor:
    """All T, or (mixed) linear from T down to T/2."""
    if not mixed or batch == 1:
        return torch.full((batch,), frames, dtype=torch.long)
    low = frames / 2.0
    vals = [round(frames - i * (frames - low) / (batch - 1))
            for i in range(batch)]
    return torch.tensor(vals, dtype=torch.long)


def point_seed(seed: int, part: str, batch: int, frames: int) -> int:
    return seed * 1000003 + (0 if part == "encoder" else 500009) + \
        batch * 10007 + frames


def encoder_inputs(seed: int, batch: int, frames: int, feat_dim: int,
                   mixed: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(point_seed(seed, "encoder", batch,
                                                   frames))
    feats = torch.randn(batch, frames, feat_dim, generator=gen)
    return feats, spread_lengths(batch, frames, mixed)


def decoder_inputs(seed: int, batch: int, frames: int, d: int, vocab: int,
                   sos: int, eos: int, mixed: bool):
    gen = torch.Generator().manual_seed(point_seed(seed, "decoder", batch,
                                                   frames))
    memory = torch.randn(batch, frames, d, generator=gen)
    # tokens avoid blank (0) and <sos>/<eos> (V-1 by default)
    hyps = torch.randint(1, max(vocab - 1, 2), (batch, NUM_HYPS, HYP_WIDTH),
                         generator=gen)
    hyps[:, :, 0] = sos
    hyps[:, :, -1] = eos
    hyps_lens = torch.full((batch * NUM_HYPS,), HYP_WIDTH - 1,
                           dtype=torch.long)
    return memory, spread_lengths(batch, frames, mixed), hyps, hyps_lens


def time_runs(fn: Callable[[], object], runs: int, warmup: int,
              device: torch.device) -> List[float]:
    """Per-run latency in ms, after `warmup` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        for _ in range(runs):
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def accuracy(out: torch.Tensor, ref: torch.Tensor,
             valid: Optional[torch.Tensor]) -> Tuple[float, float]:
    """a0, r0 of `out` vs `ref` (valid: (B, T) frames to compare)."""
    a, b = out.float(), ref.float()
    if valid is not None:
        a, b = a[valid], b[valid]
    diff = (a - b).abs()
    rel = diff / (b.abs() + 1e-9)
    return float(diff.max()), float(rel.flatten().median())


def capture_graph(fn: Callable[[], object]):
    """fn captured in one CUDA graph (warmed up on a side stream first, as
    the torch docs say); returns (graph, static outputs)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    torch.cuda.synchronize()
    return graph, out


class KeepLast:
    """Calls fn and keeps its last result (for the accuracy check)."""

    def __init__(self, fn: Callable[[], object]):
        self.fn = fn
        self.out = None

    def __call__(self) -> None:
        self.out = self.fn()


class CompileTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise CompileTimeout()


# --------------------------------------------------------------------------
# The bench
# --------------------------------------------------------------------------

class Bench:

    def __init__(self, args, model32: WenetModel):
        self.args = args
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.model32 = model32.to(self.device)
        self.model16 = copy.deepcopy(model32).half().to(self.device)
        self.feat_dim = model32.input_dim
        self.d = model32.ctc.ctc_lo.in_features
        self.points: List[dict] = []
        self.notes: List[str] = []
        self.fp16_ok = True
        self.compile_spent = 0.0
        self.compile_gave_up = set()

    def write(self) -> None:
        dev = (torch.cuda.get_device_name(self.device) if self.cuda else
               "cpu")
        doc = {"device": dev, "torch": torch.__version__,
               "settings": {"runs": self.args.runs,
                            "warmup": self.args.warmup,
                            "mixed_lengths": self.args.mixed_lengths,
                            "tf32": self.args.tf32, "seed": self.args.seed},
               "points": self.points, "notes": self.notes}
        tmp = self.args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, self.args.out)

    def note(self, text: str) -> None:
        print(f"note: {text}", file=sys.stderr)
        self.notes.append(text)

    def record(self, part: str, peer: str, batch: int, frames: int,
               times: List[float], out0, ref0, valid, extra=None) -> None:
        med = float(np.median(times))
        a0, r0 = accuracy(out0, ref0, valid)
        row = {"batch": batch, "frames": frames, "part": part, "peer": peer,
               "median_ms": med, "p90_ms": float(np.percentile(times, 90)),
               "throughput": batch * frames / (med / 1e3),
               "a0": a0, "r0": r0}
        row.update(extra or {})
        self.points.append(row)
        self.write()
        print(f"{part:8s} {batch:3d}x{frames:<5d} {peer:31s} "
              f"median {med:9.3f} ms  p90 {row['p90_ms']:9.3f} ms  "
              f"a0 {a0:.3e}  r0 {r0:.3e}", file=sys.stderr)

    def run_point(self, part: str, batch: int, frames: int) -> None:
        dev = self.device
        if part == "encoder":
            feats, lens = encoder_inputs(self.args.seed, batch, frames,
                                         self.feat_dim,
                                         self.args.mixed_lengths)
            in32 = (feats.to(dev), lens.to(dev))
            in16 = (feats.half().to(dev), lens.to(dev))
            step = encoder_step
        else:
            m = self.model32
            memory, mem_lens, hyps, hyps_lens = decoder_inputs(
                self.args.seed, batch, frames, self.d, m.vocab_size, m.sos,
                m.eos, self.args.mixed_lengths)
            rest = (mem_lens.to(dev), hyps.to(dev), hyps_lens.to(dev))
            in32 = (memory.to(dev),) + rest
            in16 = (memory.half().to(dev),) + rest
            step = decoder_step

        with torch.inference_mode():
            ref = step(self.model32, *in32)
            valid = None
            if part == "encoder":
                _, masks = encoder_forward(self.model32, *in32)
                valid = masks.squeeze(1)
            ref0 = ref[0]
            peers = self.args.peers
            if self.args.save_io:
                self.save_io(part, batch, frames, in32, ref, valid)

            if "torch_fp32" in peers:
                run = KeepLast(lambda: step(self.model32, *in32))
                times = time_runs(run, self.args.runs, self.args.warmup, dev)
                self.record(part, "torch_fp32", batch, frames, times,
                            run.out[0], ref0, valid)
                del run

            if "torch_fp16" in peers and self.fp16_ok:
                run = KeepLast(lambda: step(self.model16, *in16))
                try:
                    times = time_runs(run, self.args.runs, self.args.warmup,
                                      dev)
                except RuntimeError as e:  # e.g. an op without CPU fp16
                    self.fp16_ok = False
                    self.note(f"torch_fp16 skipped on {dev}: "
                              f"{str(e).splitlines()[0]}")
                else:
                    self.record(part, "torch_fp16", batch, frames, times,
                                run.out[0], ref0, valid)
                del run

            if "torch_fp16_graph" in peers and self.cuda:
                try:
                    graph, out = capture_graph(
                        lambda: step(self.model16, *in16))
                except RuntimeError as e:
                    self.note(f"torch_fp16_graph {part} {batch}x{frames} "
                              f"skipped: capture failed: "
                              f"{str(e).splitlines()[0][:300]}")
                else:
                    times = time_runs(graph.replay, self.args.runs,
                                      self.args.warmup, dev)
                    self.record(part, "torch_fp16_graph", batch, frames,
                                times, out[0], ref0, valid)
                    del graph, out

        for peer, mode in COMPILE_MODES.items():
            if peer in peers and self.args.compile and self.cuda:
                self.run_compiled(peer, mode, part, batch, frames, step, in16,
                                  ref0, valid)
        del ref, ref0
        if self.cuda:
            torch.cuda.empty_cache()

    def save_io(self, part, batch, frames, in32, ref, valid) -> None:
        """Inputs and FP32 outputs of a point (goldens_io format), so that
        an engine can be checked against this very reference."""
        cpu = [t.cpu().numpy() for t in in32]
        if part == "encoder":
            names = ["feats", "feats_lens"]
            outs = {"encoder_out": ref[0], "ctc_log_probs": ref[1],
                    "encoder_lens": valid.sum(1)}
        else:
            names = ["encoder_out", "encoder_lens", "hyps_pad_sos_eos",
                     "hyps_lens"]
            outs = {"decoder_log_probs": ref[0], "best": ref[1]}
        tensors = dict(zip(names, cpu))
        tensors.update({k: v.cpu().numpy() for k, v in outs.items()})
        write_goldens(os.path.join(self.args.save_io,
                                   f"{part}_{batch}x{frames}"), tensors)

    def run_compiled(self, peer, mode, part, batch, frames, step, in16, ref0,
                     valid):
        """torch.compile(mode=mode) of the fp16 step (reduce-overhead or
        max-autotune; both record CUDA graphs), compiled afresh for this
        shape (dynamic=False: torch's best case). Compiling, autotuning and
        the first calls that record the CUDA graphs are not timed; then
        time_runs warms up again and times. The point is skipped when all
        that fails or passes --compile-timeout (--autotune-timeout for
        max-autotune); after a timeout the peer's later points of the part
        are skipped too (they would cost as much), and so are all points
        once --compile-budget seconds are spent."""
        import torch._dynamo
        what = f"{peer} {part} {batch}x{frames} skipped"
        if (peer, part) in self.compile_gave_up:
            self.note(f"{what}: an earlier {part} point timed out")
            return
        budget = self.args.compile_budget
        if budget > 0 and self.compile_spent >= budget:
            self.note(f"{what}: --compile-budget {budget:g} s spent")
            return
        limit = (self.args.autotune_timeout if mode == "max-autotune" else
                 self.args.compile_timeout)
        if budget > 0:
            limit = min(limit, budget - self.compile_spent)
        torch._dynamo.reset()
        model16 = self.model16
        compiled = torch.compile(lambda *xs: step(model16, *xs),
                                 mode=mode, dynamic=False)

        def call():
            torch.compiler.cudagraph_mark_step_begin()
            return compiled(*in16)

        run = KeepLast(call)
        old = signal.signal(signal.SIGALRM, _on_alarm)
        t0 = time.perf_counter()
        failure = None
        try:
            # re-fires every second: torch swallows some exceptions inside
            # compilation, so one alarm alone may not stop it
            signal.setitimer(signal.ITIMER_REAL, limit, 1.0)
            with torch.inference_mode():
                for _ in range(3):
                    run()
                if self.cuda:
                    torch.cuda.synchronize()
        except CompileTimeout:
            failure = f"compiling took over {limit:g} s"
            self.compile_gave_up.add((peer, part))
        except Exception as e:  # noqa: BLE001 - any compile failure skips
            if time.perf_counter() - t0 >= limit:  # timeout wrapped by dynamo
                failure = f"compiling took over {limit:g} s"
                self.compile_gave_up.add((peer, part))
            else:
                failure = (f"{type(e).__name__}: "
                           f"{str(e).splitlines()[0][:300]}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        compile_s = time.perf_counter() - t0
        self.compile_spent += compile_s
        if failure is None and compile_s > limit:
            failure = f"compiling took {compile_s:.0f} s, over {limit:g} s"
            self.compile_gave_up.add((peer, part))
        if failure is None:
            with torch.inference_mode():
                times = time_runs(run, self.args.runs, self.args.warmup,
                                  self.device)
                self.record(part, peer, batch, frames, times, run.out[0],
                            ref0, valid, {"compile_s": round(compile_s, 2),
                                          "compile_mode": mode})
        else:
            self.note(f"{what}: {failure}")
        del run
        torch._dynamo.reset()


def parse_grid(text: str) -> List[Tuple[int, int]]:
    points = []
    for item in text.split(","):
        item = item.strip()
        try:
            b, t = item.lower().split("x")
            b, t = int(b), int(t)
        except ValueError:
            raise SystemExit(f"--grid: expected BxT items like 4x64, got "
                             f"{item!r}")
        if b < 1 or t < 7:
            raise SystemExit(f"--grid: {item}: expected batch >= 1 and "
                             f"frames >= 7 (one frame after subsampling)")
        points.append((b, t))
    return points


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dump", help="weights dump dir (bench mode)")
    p.add_argument("--grid",
                   default="1x16,1x64,1x256,4x16,4x64,4x256,16x16,16x64,"
                           "16x256",
                   help="comma-separated BATCHxFRAMES points")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--out", default="peers.json")
    p.add_argument("--compile", action="store_true",
                   help="also time torch.compile fp16, modes reduce-overhead "
                        "and max-autotune (see --peers)")
    p.add_argument("--compile-timeout", type=float, default=120.0,
                   help="seconds per point for compiling (default 120)")
    p.add_argument("--autotune-timeout", type=float, default=900.0,
                   help="seconds per point for compiling with max-autotune "
                        "(default 900)")
    p.add_argument("--compile-budget", type=float, default=0.0,
                   help="total seconds for compiling, all points (0: none)")
    p.add_argument("--mixed-lengths", action="store_true",
                   help="lengths linear from T down to T/2 across the batch")
    p.add_argument("--parts", default="encoder,decoder")
    p.add_argument("--peers", default=",".join(PEERS),
                   help="subset of " + ",".join(PEERS))
    p.add_argument("--device", default=None,
                   help="cuda (default when available) or cpu (testing)")
    p.add_argument("--tf32", action="store_true",
                   help="let the FP32 peer use TF32 (default: true FP32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-io", metavar="DIR",
                   help="also write each point's inputs and FP32 outputs to "
                        "DIR/<part>_<B>x<T>/ (manifest.json + NAME.bin)")
    p.add_argument("--make-dump", metavar="DUMP",
                   help="write a dump of a random model and exit")
    p.add_argument("--config", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "bench_model.yaml"),
        help="train.yaml for --make-dump")
    args = p.parse_args(argv)

    if args.make_dump:
        make_dump(args.make_dump, args.config, args.seed)
        return 0
    if not args.dump:
        p.error("expected --dump DUMP (or --make-dump DUMP)")
    if args.runs < 1 or args.warmup < 0:
        p.error("expected --runs >= 1 and --warmup >= 0")
    args.peers = [x.strip() for x in args.peers.split(",") if x.strip()]
    for peer in args.peers:
        if peer not in PEERS:
            p.error(f"--peers: expected names from {PEERS}, got {peer!r}")
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    for part in parts:
        if part not in ("encoder", "decoder"):
            p.error(f"--parts: expected encoder/decoder, got {part!r}")
    grid = parse_grid(args.grid)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"

    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32

    model = load_dump(args.dump)
    check_forwards(model)
    bench = Bench(args, model)
    if not bench.cuda:
        for peer in ("torch_fp16_graph",) + tuple(COMPILE_MODES):
            if peer in args.peers and (peer not in COMPILE_MODES or
                                       args.compile):
                bench.note(f"{peer} skipped: needs a CUDA device, running "
                           f"on {args.device}")
    elif not args.compile:
        for peer in COMPILE_MODES:
            if peer in args.peers:
                bench.note(f"{peer} not run (no --compile)")
    bench.write()
    for part in parts:
        for batch, frames in grid:
            bench.run_point(part, batch, frames)
    bench.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
