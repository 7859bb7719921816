#!/usr/bin/env python3
"""Checks the claim train.py's streaming evaluation rests on: for a conformer with a CAUSAL conv
module and all left chunks (num_decoding_left_chunks -1), WeNet's chunk-masked full-sequence
forward (model.encode(..., decoding_chunk_size=C), what WeNet's decode does without
simulate_streaming) gives the same encoder output as WeNet's chunk-by-chunk streaming forward
(encoder.forward_chunk_by_chunk: overlapping subsampling windows, K/V cache, conv cache), also
for utterances padded inside a batch. The same holds with limited left chunks (the K/V cache of
C*L frames per layer is exactly the mask's window). Counter-check: with a non-causal conv module
the two differ (the masked forward's conv looks right of the chunk, chunk by chunk it does not).

    python3 reference/check_streaming.py [--d 144 --blocks 2]

The reference's forward_chunk_by_chunk itself is checked against WeNet's own outputs by
check_wenet_goldens.py (tests/data/wenet-goldens/u2*_stream_tiny). Exit status 1 on failure.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wenet_ref import from_config  # noqa: E402

TOL = 1e-4


def config(d, blocks, causal, kernel=15):
    return {
        "input_dim": 80, "output_dim": 30, "encoder": "conformer", "decoder": "bitransformer",
        "encoder_conf": {
            "output_size": d, "attention_heads": 4, "linear_units": 4 * d, "num_blocks": blocks,
            "input_layer": "conv2d", "normalize_before": True, "cnn_module_kernel": kernel,
            "use_cnn_module": True, "activation_type": "swish", "pos_enc_layer_type": "rel_pos",
            "selfattention_layer_type": "rel_selfattn", "macaron_style": True,
            "cnn_module_norm": "layer_norm", "causal": causal, "use_dynamic_chunk": True,
            "use_dynamic_left_chunk": False},
        "decoder_conf": {"attention_heads": 4, "linear_units": 4 * d, "num_blocks": 1,
                         "r_num_blocks": 1},
        "model_conf": {"reverse_weight": 0.3},
        "cmvn": None,
    }


def randomize(model, gen):
    """Random weights with O(1) effects (norm gains and biases too), so every term matters."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=gen))
            elif p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--d", type=int, default=144)
    ap.add_argument("--blocks", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    gen = torch.Generator().manual_seed(3)
    lens = torch.tensor([611, 403, 97, 260])  # padded in one batch; 611 -> 151 frames
    feats = torch.randn(len(lens), int(lens.max()), 80, generator=gen)
    failures = []

    def compare(causal, chunk, left, expect_equal):
        torch.manual_seed(0)
        model = from_config(config(args.d, args.blocks, causal))
        randomize(model, torch.Generator().manual_seed(11))
        model.eval()
        with torch.no_grad():
            masked, mlens = model.encode(feats, lens, chunk, left)
            worst = 0.0
            for b in range(len(lens)):
                n = int(lens[b])
                ref, _ = model.encoder.forward_chunk_by_chunk(feats[b:b + 1, :n], chunk, left)
                if ref.size(1) != int(mlens[b]):
                    failures.append(f"causal={causal} chunk {chunk} left {left} utt {b}: "
                                    f"{ref.size(1)} chunk-by-chunk frames vs {int(mlens[b])}")
                    return
                worst = max(worst, (ref[0] - masked[b, :ref.size(1)]).abs().max().item())
        equal = worst <= TOL
        verdict = "ok" if equal == expect_equal else "FAIL"
        if verdict == "FAIL":
            failures.append(f"causal={causal} chunk {chunk} left {left}: max abs diff {worst:.3g}"
                            f", expected {'equal' if expect_equal else 'different'}")
        print(f"causal={str(causal):5s} chunk {chunk:2d} left {left:2d}: masked batched forward "
              f"vs chunk by chunk, max abs diff {worst:.3g} "
              f"({'equal' if equal else 'different'}, as expected: {verdict})")

    for chunk in (16, 8, 4, 1):
        compare(True, chunk, -1, True)
    compare(True, 8, 2, True)    # limited left context: cache of C*L frames = the mask's window
    compare(False, 8, -1, False)  # non-causal conv: the masked forward looks right of the chunk
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
