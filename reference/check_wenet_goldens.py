#!/usr/bin/env python3
"""Check the reference (wenet_ref) against goldens in WeNet's format.

By default checks tests/data/wenet-goldens/* (written by WeNet's own code).
Pass model dirs to check others, e.g. tests/data/goldens/* to verify that
make_goldens.py output is reproducible.

Per model dir: encoder_out (valid frames), encoder_lens (exact),
ctc_log_probs (valid frames), decoder log-probs (l2r, and r2l where
present) for the golden hyps_in on the golden encoder_out (isolates the
decoder) and on the reference's own encoder_out, and decode.json: greedy
tokens, prefix-beam N-best order and scores, rescoring tokens and score.
Streaming dirs (goldens uttU_feats, WeNet's forward_chunk_by_chunk per
(decoding_chunk_size, num_decoding_left_chunks) case): the full-context
encoder_out, the reference's forward_chunk_by_chunk encoder_out and CTC
log-probs per case, CTC greedy / prefix beam / rescoring on them; and, where
the conv module is causal, that the chunk-masked
full-sequence forward (model.encode with decoding_chunk_size) equals WeNet's
chunk-by-chunk output.
Exit status 1 if a tensor differs by more than 1e-4, a score by more than
1e-3, or any token sequence differs.
"""

import argparse
import glob
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wenet_ref import load_model_dir  # noqa: E402
from wenet_ref.goldens_io import read_goldens  # noqa: E402
from wenet_ref.margins import decision_margins  # noqa: E402
from wenet_ref.search import (attention_rescoring,  # noqa: E402
                              ctc_greedy_search, ctc_prefix_beam_search)

TENSOR_TOL = 1e-4
SCORE_TOL = 1e-3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {tuple(a.shape)} vs "
                         f"{tuple(b.shape)}")
    return (a.float() - b.float()).abs().max().item() if a.numel() else 0.0


class Report:

    def __init__(self):
        self.failures = []
        self.maxima = {}

    def diff(self, what: str, value: float, tol: float, group: str):
        self.maxima[group] = max(self.maxima.get(group, 0.0), value)
        if not value <= tol:
            self.failures.append(f"{what}: max abs diff {value:.3g} > {tol}")

    def same(self, what: str, ours, theirs):
        if ours != theirs:
            self.failures.append(f"{what}: expected {theirs}, got {ours}")


def check_stream_dir(name, model, g, dec, rep: Report) -> str:
    """A streaming goldens dir: per utterance and (chunk, left) case."""
    causal = all(layer.conv_module is None or layer.conv_module.lorder > 0
                 for layer in model.encoder.encoders) and \
        hasattr(model.encoder.encoders[0], "conv_module")
    masked_checked = 0
    u = 0
    while f"utt{u}_feats" in g:
        feats = g[f"utt{u}_feats"]
        lens = torch.tensor([feats.size(1)])
        full, _ = model.encode(feats, lens)
        rep.diff(f"{name} utt{u} encoder_out (full)",
                 max_diff(full, g[f"utt{u}_encoder_out_full"]), TENSOR_TOL,
                 "encoder_out")
        for chunk, left in dec["cases"]:
            key = f"utt{u}_chunk{chunk}_left{left}"
            enc, _ = model.encoder.forward_chunk_by_chunk(feats, chunk, left)
            rep.diff(f"{name} {key} encoder_out (chunk by chunk)",
                     max_diff(enc, g[key + "_encoder_out"]), TENSOR_TOL,
                     "stream_encoder_out")
            ctc = model.ctc_log_probs(enc)
            rep.diff(f"{name} {key} ctc_log_probs (chunk by chunk)",
                     max_diff(ctc, g[key + "_ctc_log_probs"]), TENSOR_TOL,
                     "stream_ctc_log_probs")
            if causal:
                masked, mlens = model.encode(feats, lens, chunk, left)
                rep.same(f"{name} {key} masked forward length",
                         int(mlens[0]), enc.size(1))
                rep.diff(f"{name} {key} encoder_out (chunk-masked forward)",
                         max_diff(masked, g[key + "_encoder_out"]),
                         TENSOR_TOL, "stream_encoder_out_masked")
                masked_checked += 1
            res = dec["results"][key]
            n = enc.size(1)
            rep.same(f"{name} {key} ctc_greedy_search",
                     ctc_greedy_search(ctc[0], n, model.blank_id),
                     res["ctc_greedy_search"])
            nbest, scores = ctc_prefix_beam_search(ctc[0], n,
                                                   dec["beam_size"],
                                                   model.blank_id)
            pbs = res["ctc_prefix_beam_search"]
            rep.same(f"{name} {key} prefix-beam nbest", nbest, pbs["nbest"])
            rep.diff(f"{name} {key} prefix-beam scores",
                     max(abs(a - b) for a, b in
                         zip(scores, pbs["nbest_scores"])), SCORE_TOL,
                     "nbest_scores")
            _, tokens, score, _ = attention_rescoring(
                model, enc, nbest, scores, dec["ctc_weight"],
                dec["reverse_weight"])
            ar = res["attention_rescoring"]
            rep.same(f"{name} {key} rescoring tokens", tokens, ar["tokens"])
            rep.diff(f"{name} {key} rescoring score",
                     abs(score - ar["score"]), SCORE_TOL, "rescoring_score")
        u += 1
    return (f"streaming: {u} utterances x {len(dec['cases'])} cases, "
            f"{masked_checked} chunk-masked forwards vs chunk by chunk")


def check_dir(model_dir: str, rep: Report) -> str:
    """Checks one model dir; returns its decision margins as text."""
    name = os.path.basename(os.path.normpath(model_dir))
    model = load_model_dir(model_dir)
    g = {k: torch.from_numpy(v) for k, v in
         read_goldens(os.path.join(model_dir, "goldens")).items()}
    with open(os.path.join(model_dir, "goldens", "decode.json")) as f:
        dec = json.load(f)
    if "utt0_feats" in g:
        return check_stream_dir(name, model, g, dec, rep)

    enc, lens = model.encode(g["feats"], g["feats_lens"])
    rep.same(f"{name} encoder_lens", lens.tolist(), g["encoder_lens"].tolist())
    ctc = model.ctc_log_probs(enc)
    for b in range(enc.size(0)):
        n = int(g["encoder_lens"][b])
        rep.diff(f"{name} utt{b} encoder_out",
                 max_diff(enc[b, :n], g["encoder_out"][b, :n]), TENSOR_TOL,
                 "encoder_out")
        rep.diff(f"{name} utt{b} ctc_log_probs",
                 max_diff(ctc[b, :n], g["ctc_log_probs"][b, :n]), TENSOR_TOL,
                 "ctc_log_probs")

    for b in range(enc.size(0)):
        n = int(g["encoder_lens"][b])
        key = f"utt{b}"
        hyps_in, hyps_lens = g[key + "_hyps_in"], g[key + "_hyps_in_lens"]
        for rev, suffix in ((False, "_decoder_log_probs"),
                            (True, "_r_decoder_log_probs")):
            if key + suffix not in g:
                continue
            group = "r_decoder_log_probs" if rev else "decoder_log_probs"
            for src, memory in (("golden enc", g["encoder_out"][b:b + 1, :n]),
                                ("own enc", enc[b:b + 1, :n])):
                lp = model.decode(memory, torch.tensor([n]), hyps_in,
                                  hyps_lens, reverse=rev)
                rep.diff(f"{name} {key}{suffix} ({src})",
                         max_diff(lp, g[key + suffix]), TENSOR_TOL, group)

        res = dec["results"][key]
        rep.same(f"{name} {key} ctc_greedy_search",
                 ctc_greedy_search(ctc[b], n, model.blank_id),
                 res["ctc_greedy_search"])
        nbest, scores = ctc_prefix_beam_search(ctc[b], n, dec["beam_size"],
                                               model.blank_id)
        pbs = res["ctc_prefix_beam_search"]
        rep.same(f"{name} {key} prefix-beam nbest", nbest, pbs["nbest"])
        if len(scores) == len(pbs["nbest_scores"]):
            rep.diff(f"{name} {key} prefix-beam scores",
                     max(abs(a - b) for a, b in
                         zip(scores, pbs["nbest_scores"])), SCORE_TOL,
                     "nbest_scores")
        # Rescore WeNet's own N-best so this checks only the rescoring.
        _, tokens, score, _ = attention_rescoring(
            model, enc[b:b + 1, :n], pbs["nbest"], pbs["nbest_scores"],
            dec["ctc_weight"], dec["reverse_weight"])
        ar = res["attention_rescoring"]
        rep.same(f"{name} {key} rescoring tokens", tokens, ar["tokens"])
        rep.diff(f"{name} {key} rescoring score", abs(score - ar["score"]),
                 SCORE_TOL, "rescoring_score")
        # End to end: our own N-best and scores.
        _, tokens, score, _ = attention_rescoring(
            model, enc[b:b + 1, :n], nbest, scores, dec["ctc_weight"],
            dec["reverse_weight"])
        rep.same(f"{name} {key} rescoring tokens (own N-best)", tokens,
                 ar["tokens"])
        rep.diff(f"{name} {key} rescoring score (own N-best)",
                 abs(score - ar["score"]), SCORE_TOL, "rescoring_score")
    margins, moved = decision_margins(model, enc, lens, dec["beam_size"],
                                      dec["ctc_weight"],
                                      dec["reverse_weight"])
    return " ".join(f"{k} {v:.4f}" for k, v in margins.items()) + \
        f" (rescoring moved {moved}/{enc.size(0)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dirs", nargs="*",
                    help="model dirs with goldens/ (default: "
                    "tests/data/wenet-goldens/*)")
    args = ap.parse_args()
    dirs = args.model_dirs or sorted(
        p for p in glob.glob(os.path.join(ROOT, "tests/data/wenet-goldens/*"))
        if os.path.isdir(p))
    torch.set_num_threads(1)  # deterministic summation order
    rep = Report()
    for d in dirs:
        before = len(rep.failures)
        margins = check_dir(d, rep)
        status = "ok" if len(rep.failures) == before else "FAIL"
        print(f"{os.path.basename(os.path.normpath(d)):30s} {status:4s} "
              f"margins: {margins}")
    print("max abs diffs:")
    for k, v in rep.maxima.items():
        print(f"  {k:22s} {v:.3g}")
    for f in rep.failures:
        print("FAIL", f)
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.exit(main())
