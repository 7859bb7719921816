#!/usr/bin/env python3
"""Write tiny random-weight WeNet model dirs plus golden outputs of the
reference into tests/data/goldens/<variant>/, in the format of
tests/data/wenet-goldens (see its README.md):

  train.yaml  final.pt  global_cmvn  units.txt
  goldens/manifest.json  goldens/NAME.bin  goldens/decode.json

Seeded and deterministic: rerunning with the same torch version rewrites
the same files. Position tables (`pe`) are kept in final.pt as WeNet does,
but with PE_MAX_LEN rows instead of 5000 to keep the files small.
"""

import argparse
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import yaml
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wenet_ref.goldens_io import write_goldens  # noqa: E402
from wenet_ref.margins import decision_margins  # noqa: E402
from wenet_ref.model import cmvn_from_stats, from_config  # noqa: E402
from wenet_ref.search import (attention_rescoring,  # noqa: E402
                              ctc_greedy_search, ctc_prefix_beam_search,
                              pad_hyps)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "data", "goldens")
PE_MAX_LEN = 500
NUM_MEL = 80
# Valid frames per utterance (batch padded to the first). None of them is
# a multiple of the subsampling rate; the second leaves the batch's longest
# utterance only 1-2 subsampled frames longer, so the conformer conv module
# sees a mix of padded frames (GLU(bias)) and conv zero padding.
FEATS_LENS = [97, 90, 37]
BEAM = 4
CTC_WEIGHT = 0.5

# name -> (seed, config overrides). Base: conformer, rel_pos, macaron,
# conv2d, batch_norm, d 32, 2 heads, 2 + 2 blocks, vocab 40. Seeds were
# picked with --seed-search 400 (largest decision margins, see
# wenet_ref/margins.py).
VARIANTS = {
    "conformer_relpos_transformer": (1110, {}),
    "conformer_bitransformer": (2090, {
        "decoder": "bitransformer",
        "decoder_conf": {"num_blocks": 2, "r_num_blocks": 1},
        "model_conf": {"reverse_weight": 0.3},
    }),
    "conformer_layernorm": (3012, {
        "encoder_conf": {"cnn_module_norm": "layer_norm",
                         "cnn_module_kernel": 5},
    }),
    "transformer_abspos": (4292, {
        "encoder": "transformer",
        "old_layout": True,
    }),
    "conformer_conv2d6": (5202, {"encoder_conf": {"input_layer": "conv2d6"}}),
    "conformer_conv2d8": (6205, {"encoder_conf": {"input_layer": "conv2d8"}}),
    "conformer_sizes": (7146, {
        "vocab": 57,
        "encoder_conf": {"output_size": 48, "attention_heads": 3,
                         "linear_units": 100, "num_blocks": 3,
                         "cnn_module_kernel": 9, "activation_type": "relu",
                         "macaron_style": False},
        "decoder_conf": {"attention_heads": 3, "linear_units": 80,
                         "num_blocks": 2},
    }),
    # Not in the issue's list: u2++-style causal conv (left context of
    # kernel-1 frames of GLU(bias)), layer_norm, dynamic-chunk training
    # flags (full context at decoding), bitransformer.
    "conformer_causal": (8104, {
        "decoder": "bitransformer",
        "encoder_conf": {"causal": True, "cnn_module_norm": "layer_norm",
                         "cnn_module_kernel": 5, "use_dynamic_chunk": True,
                         "use_dynamic_left_chunk": False},
        "decoder_conf": {"num_blocks": 1, "r_num_blocks": 2},
        "model_conf": {"reverse_weight": 0.4},
    }),
}


def build_config(overrides: dict) -> dict:
    """train.yaml contents in WeNet's layout (new, or old for old_layout)."""
    vocab = overrides.get("vocab", 40)
    transformer = overrides.get("encoder") == "transformer"
    enc = {"output_size": 32, "attention_heads": 2, "linear_units": 64,
           "num_blocks": 2, "dropout_rate": 0.0,
           "positional_dropout_rate": 0.0, "attention_dropout_rate": 0.0,
           "normalize_before": True, "input_layer": "conv2d"}
    if transformer:
        enc["pos_enc_layer_type"] = "abs_pos"
    else:
        enc.update({"cnn_module_kernel": 7, "use_cnn_module": True,
                    "activation_type": "swish",
                    "pos_enc_layer_type": "rel_pos",
                    "selfattention_layer_type": "rel_selfattn",
                    "macaron_style": True, "cnn_module_norm": "batch_norm"})
    enc.update(overrides.get("encoder_conf", {}))
    dec = {"attention_heads": 2, "linear_units": 64, "num_blocks": 2,
           "dropout_rate": 0.0, "positional_dropout_rate": 0.0,
           "self_attention_dropout_rate": 0.0,
           "src_attention_dropout_rate": 0.0}
    dec.update(overrides.get("decoder_conf", {}))
    model_conf = {"ctc_weight": 0.3, "lsm_weight": 0.1,
                  "length_normalized_loss": False, "reverse_weight": 0.0}
    model_conf.update(overrides.get("model_conf", {}))
    cfg = {"input_dim": NUM_MEL, "output_dim": vocab,
           "encoder": overrides.get("encoder", "conformer"),
           "decoder": overrides.get("decoder", "transformer"),
           "encoder_conf": enc, "decoder_conf": dec}
    old = overrides.get("old_layout", False)
    if not old:
        cfg["ctc_conf"] = {"ctc_blank_id": 0}
    cfg["model_conf"] = model_conf
    if not old:
        cfg["cmvn"] = "global_cmvn"
        cfg["cmvn_conf"] = {"cmvn_file": "global_cmvn", "is_json_cmvn": True}
    cfg["dataset_conf"] = {"fbank_conf": {"num_mel_bins": NUM_MEL,
                                          "frame_shift": 10,
                                          "frame_length": 25, "dither": 0.1}}
    if old:
        cfg["cmvn_file"] = "global_cmvn"
        cfg["is_json_cmvn"] = True
    else:
        cfg["tokenizer"] = "char"
        cfg["tokenizer_conf"] = {
            "symbol_table_path": "units.txt",
            "special_tokens": {"<blank>": 0, "<unk>": 1, "<sos>": vocab - 1,
                               "<eos>": vocab - 1}}
    return cfg


def f32(x: float) -> float:
    return float(np.float32(x))


def make_cmvn_stats(gen: torch.Generator):
    """Fbank-like statistics: per-bin mean 8..11, std 2..4."""
    frames = 100000
    mean = 8 + 3 * torch.rand(NUM_MEL, generator=gen, dtype=torch.float64)
    std = 2 + 2 * torch.rand(NUM_MEL, generator=gen, dtype=torch.float64)
    return {"mean_stat": [f32(m * frames) for m in mean.tolist()],
            "var_stat": [f32((s * s + m * m) * frames)
                         for m, s in zip(mean.tolist(), std.tolist())],
            "frame_num": frames}


def make_feats(gen: torch.Generator, stats: dict) -> torch.Tensor:
    """(B, T, 80) raw features: per-bin mean/std of the stats, smooth in
    time, zeros past each utterance's length (as WeNet pads)."""
    mean, istd = cmvn_from_stats(stats["mean_stat"], stats["var_stat"],
                                 stats["frame_num"])
    t_max = max(FEATS_LENS)
    noise = torch.randn(len(FEATS_LENS), t_max + 2, NUM_MEL, generator=gen)
    smooth = (noise[:, :-2] + noise[:, 1:-1] + noise[:, 2:]) / math.sqrt(3)
    feats = mean + smooth / istd
    for b, n in enumerate(FEATS_LENS):
        feats[b, n:] = 0.0
    return feats.float()


def randomize(model: nn.Module, gen: torch.Generator) -> None:
    """Give every term a visible effect: random norm gains/biases, BatchNorm
    statistics, relative-position biases; scale the CTC head so that the
    searches have real decisions to make."""

    def uniform(t, lo, hi):
        t.copy_(lo + (hi - lo) * torch.rand(t.shape, generator=gen))

    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, (nn.LayerNorm, nn.BatchNorm1d)):
                uniform(mod.weight, 0.6, 1.4)
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape,
                                                 generator=gen))
            if isinstance(mod, nn.BatchNorm1d):
                mod.running_mean.copy_(
                    0.2 * torch.randn(mod.running_mean.shape, generator=gen))
                uniform(mod.running_var, 0.5, 2.0)
                mod.num_batches_tracked.fill_(1000)
        for name, p in model.named_parameters():
            if name.endswith("pos_bias_u") or name.endswith("pos_bias_v"):
                bound = math.sqrt(6.0 / (p.size(0) + p.size(1)))
                uniform(p, -bound, bound)  # WeNet's xavier_uniform_ init
        model.ctc.ctc_lo.weight.mul_(4.0)
        model.ctc.ctc_lo.bias.mul_(4.0)


def init_params(model: nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default init ranges, drawn from `gen`."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                fan_in = mod.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                mod.weight.copy_((torch.rand(mod.weight.shape, generator=gen)
                                  * 2 - 1) * bound)
                if mod.bias is not None:
                    mod.bias.copy_((torch.rand(mod.bias.shape, generator=gen)
                                    * 2 - 1) * bound)
            elif isinstance(mod, nn.Embedding):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen))


def write_units(path: str, vocab: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("<blank> 0\n<unk> 1\n")
        for i in range(2, vocab - 1):
            f.write(f"{chr(0x4E00 + i)} {i}\n")
        f.write(f"<sos/eos> {vocab - 1}\n")


def build_variant(seed: int, overrides: dict):
    """(cfg, cmvn stats, model, feats) of one variant, all drawn from seed."""
    gen = torch.Generator().manual_seed(seed)
    cfg = build_config(overrides)
    stats = make_cmvn_stats(gen)
    model = from_config(cfg, pe_max_len=PE_MAX_LEN,
                        cmvn=cmvn_from_stats(stats["mean_stat"],
                                             stats["var_stat"],
                                             stats["frame_num"]))
    init_params(model, gen)
    randomize(model, gen)
    model.eval()
    return cfg, stats, model, make_feats(gen, stats)


def variant_margins(seed: int, overrides: dict) -> dict:
    cfg, _, model, feats = build_variant(seed, overrides)
    enc, enc_lens = model.encode(feats, torch.tensor(FEATS_LENS))
    return decision_margins(model, enc, enc_lens, BEAM, CTC_WEIGHT,
                            float(cfg["model_conf"]["reverse_weight"]))


def make_variant(name: str, seed: int, overrides: dict) -> None:
    out = os.path.join(OUT_DIR, name)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    cfg, stats, model, feats = build_variant(seed, overrides)

    with open(os.path.join(out, "train.yaml"), "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)
    with open(os.path.join(out, "global_cmvn"), "w") as f:
        json.dump(stats, f)
    write_units(os.path.join(out, "units.txt"), cfg["output_dim"])
    torch.save(model.state_dict(), os.path.join(out, "final.pt"))

    feats_lens = torch.tensor(FEATS_LENS)
    enc, enc_lens = model.encode(feats, feats_lens)
    ctc = model.ctc_log_probs(enc)
    tensors = {"feats": feats, "feats_lens": feats_lens, "encoder_out": enc,
               "encoder_lens": enc_lens, "ctc_log_probs": ctc}
    reverse_weight = float(cfg["model_conf"]["reverse_weight"])
    results = {}
    for b in range(len(FEATS_LENS)):
        n = int(enc_lens[b])
        memory = enc[b:b + 1, :n]
        nbest, scores = ctc_prefix_beam_search(ctc[b], n, BEAM,
                                               model.blank_id)
        hyps_in, hyps_lens = pad_hyps(nbest, model.sos, model.eos)
        key = f"utt{b}"
        tensors[key + "_hyps_in"] = hyps_in
        tensors[key + "_hyps_in_lens"] = hyps_lens
        lens = torch.tensor([n])
        tensors[key + "_decoder_log_probs"] = model.decode(
            memory, lens, hyps_in, hyps_lens)
        if model.is_bidirectional:
            tensors[key + "_r_decoder_log_probs"] = model.decode(
                memory, lens, hyps_in, hyps_lens, reverse=True)
        _, tokens, score, _ = attention_rescoring(model, memory, nbest, scores,
                                                  CTC_WEIGHT, reverse_weight)
        results[key] = {
            "ctc_greedy_search": ctc_greedy_search(ctc[b], n, model.blank_id),
            "ctc_prefix_beam_search": {"nbest": nbest,
                                       "nbest_scores": scores},
            "attention_rescoring": {"tokens": tokens, "score": score},
        }
    gdir = os.path.join(out, "goldens")
    write_goldens(gdir, {k: v.numpy() for k, v in tensors.items()})
    with open(os.path.join(gdir, "decode.json"), "w") as f:
        json.dump({"beam_size": BEAM, "ctc_weight": CTC_WEIGHT,
                   "reverse_weight": reverse_weight, "results": results},
                  f, indent=1)


def fmt_margins(margins) -> str:
    m, moved = margins
    return " ".join(f"{k} {v:.3f}" for k, v in m.items()) + \
        f" (rescoring moved {moved}/{len(FEATS_LENS)})"


def seed_search(names, count: int) -> None:
    """Print, per variant, the seed in [1000*k, 1000*k + count) whose
    smallest decision margin is largest among those where rescoring changes
    the CTC best at least once (to paste into VARIANTS)."""
    for k, name in enumerate(names, start=1):
        _, overrides = VARIANTS[name]
        best = None
        for seed in range(1000 * k, 1000 * k + count):
            m = variant_margins(seed, overrides)
            if m[1] == 0:
                continue
            if best is None or min(m[0].values()) > min(best[1][0].values()):
                best = (seed, m)
        if best is None:
            print(f"{name:32s} no seed where rescoring matters")
            continue
        print(f"{name:32s} seed {best[0]}: {fmt_margins(best[1])}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="*", help="subset of: " +
                    ", ".join(VARIANTS))
    ap.add_argument("--seed-search", type=int, metavar="N", default=0,
                    help="write nothing; report the best of N seeds for "
                    "each variant by decision margin")
    args = ap.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        print(f"unknown variant(s) {unknown}; expected some of "
              f"{list(VARIANTS)}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # deterministic summation order
    names = args.variants or list(VARIANTS)
    if args.seed_search:
        seed_search(names, args.seed_search)
        return 0
    for name in names:
        seed, overrides = VARIANTS[name]
        make_variant(name, seed, overrides)
        size = sum(os.path.getsize(os.path.join(dp, f))
                   for dp, _, fs in os.walk(os.path.join(OUT_DIR, name))
                   for f in fs)
        print(f"{name:30s} {size / 1e6:.2f} MB  margins: "
              f"{fmt_margins(variant_margins(seed, overrides))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
