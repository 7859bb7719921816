#!/usr/bin/env python3
"""Writes the end-to-end transcription goldens tests/data/e2e/<model>.json: what the reference
pipeline (WAV -> kaldi-native-fbank -> the project's PyTorch model -> search -> text) gives for
the 16 kHz WAV files of tests/data/frontend/ on the tiny models.

The pipeline copies wenet-rt's Recognizer: first channel of the file as libsndfile returns it
(integer PCM / 2^(bits-1), float kept), fbank with WeNet's options (make_fbank_goldens.knf_fbank),
CMVN inside the model, all files encoded in ONE padded batch (the Recognizer sorts by length and
batches 16 at a time; the order within the batch does not change a row's result, the padding
does), CTC greedy, CTC prefix beam (beam 10), attention rescoring (ctc_weight 0.5,
rescoring_weight 1, reverse_weight from train.yaml).

The models are tiny and random, so some decisions are near-ties that fbank differences
(wenet-rt's fbank vs kaldi-native-fbank: up to ~2e-4) or float rounding could flip. Each
(file, mode) result is therefore recomputed with the fbank perturbed (PERTURB_TRIALS trials of
+-PERTURB noise, 15 times the real difference) and kept only if the tokens never change; scores
are checked by the C++ test (at SCORE_TOL) only where they moved little enough under the same
perturbation (SCORE_TOL_KEEP). Each entry also says whether encoding the file alone (batch
size 1) gives the same tokens, robustly: the C++ batch-1-vs-16 test compares only those
("batch1_same").
Per utterance the decision margins (smallest best-vs-second-best gap anywhere in the search) are
recorded for information.

    pip install torch numpy pyyaml kaldi-native-fbank
    python3 reference/make_e2e_goldens.py          # writes tests/data/e2e/*.json (deterministic)
"""

import argparse
import json
import math
import pathlib
import re
import struct
import sys

import numpy as np
import torch
import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from make_fbank_goldens import knf_fbank  # noqa: E402
from wenet_ref import load_model_dir  # noqa: E402
from wenet_ref.margins import _beam_margins  # noqa: E402
from wenet_ref.search import (attention_rescoring,  # noqa: E402
                              ctc_greedy_search, ctc_prefix_beam_search)

MODELS = {
    "conformer_tiny": "tests/data/wenet-goldens/conformer_tiny",
    "u2pp_tiny": "tests/data/wenet-goldens/u2pp_tiny",
    "transformer_tiny": "tests/data/wenet-goldens/transformer_tiny",
    "conformer_causal": "tests/data/goldens/conformer_causal",
}
AUDIO_DIR = "tests/data/frontend"
MODES = ("ctc_greedy", "ctc_prefix_beam", "attention_rescoring")
BEAM = 10
CTC_WEIGHT = 0.5
RESCORING_WEIGHT = 1.0
FBANK_DIFF = 2e-4       # measured max |wenet-rt fbank - kaldi-native-fbank|
PERTURB = 15 * FBANK_DIFF  # max abs change of a log-mel value in a perturbed trial
PERTURB_TRIALS = 8
SCORE_TOL = 1e-3        # what the C++ test allows on scores
# Scores move about linearly with the fbank: compared only where the move seen under PERTURB,
# scaled down to FBANK_DIFF, stays under half the tolerance.
SCORE_TOL_KEEP = SCORE_TOL / 2 * PERTURB / FBANK_DIFF


def read_wav(path):
    """(first channel as float32, sample rate), as libsndfile with SFC_SET_NORM_FLOAT gives it:
    integer PCM / 2^(bits - 1), IEEE float as stored."""
    data = pathlib.Path(path).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    pos, fmt, pcm = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
        elif cid == b"data":
            pcm = body
        pos += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise ValueError(f"{path}: no fmt or data chunk")
    tag, channels, rate, _, block, bits = fmt
    n = len(pcm) // block
    if tag == 1 and bits == 16:
        x = np.frombuffer(pcm, "<i2", n * channels).astype(np.float32) / 32768.0
    elif tag == 1 and bits == 24:
        b = np.frombuffer(pcm, np.uint8, n * channels * 3).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif tag == 3 and bits == 32:
        x = np.frombuffer(pcm, "<f4", n * channels).copy()
    else:
        raise ValueError(f"{path}: unsupported WAV format tag {tag}, {bits} bits")
    return x.reshape(n, channels)[:, 0].astype(np.float32), rate


def load_features(model_dir, cfg):
    conf = (cfg.get("dataset_conf") or {}).get("fbank_conf") or {}
    if conf.get("frame_length", 25) != 25 or conf.get("frame_shift", 10) != 10:
        raise ValueError(f"{model_dir}: knf_fbank assumes 25/10 ms frames")
    bins = int(conf.get("num_mel_bins", 80))
    rate = int(conf.get("sample_rate", 16000))
    feats = {}
    for wav in sorted((ROOT / AUDIO_DIR).glob("*.wav")):
        samples, file_rate = read_wav(wav)
        if file_rate != rate:
            continue  # resampling (soxr) is tested elsewhere; not reproduced here
        feats[wav.stem] = (f"{AUDIO_DIR}/{wav.name}", len(samples) / rate,
                           knf_fbank(samples, rate, bins))
    return feats


def encode_batch(model, feats_list):
    """One padded batch of (T_i, F) arrays -> (encoder_out, lens), rows in the given order."""
    lens = torch.tensor([f.shape[0] for f in feats_list])
    x = torch.zeros(len(feats_list), int(lens.max()), feats_list[0].shape[1])
    for i, f in enumerate(feats_list):
        x[i, :f.shape[0]] = torch.from_numpy(f)
    return model.encode(x, lens)


def decode_all(model, enc, enc_lens, reverse_weight, with_margins=False):
    """Per row: {mode: (tokens, score)} and, if asked, the row's decision margins."""
    ctc = model.ctc_log_probs(enc)
    rows = []
    for b in range(enc.size(0)):
        n = int(enc_lens[b])
        res = {"ctc_greedy": (ctc_greedy_search(ctc[b], n, model.blank_id), None)}
        nbest, scores = ctc_prefix_beam_search(ctc[b], n, BEAM, model.blank_id)
        res["ctc_prefix_beam"] = (nbest[0], scores[0])
        best, tokens, score, finals = attention_rescoring(
            model, enc[b:b + 1, :n], nbest, scores, CTC_WEIGHT, reverse_weight, RESCORING_WEIGHT)
        res["attention_rescoring"] = (tokens, score)
        margins = None
        if with_margins:
            top2, _ = ctc[b, :n].topk(2)
            cut, order, _, _ = _beam_margins(ctc[b], n, BEAM)
            ranked = sorted(finals, reverse=True)
            margins = {
                "greedy": float((top2[:, 0] - top2[:, 1]).min()),
                "beamcut": cut,
                "order": order,
                "rescore": ranked[0] - ranked[1] if len(ranked) > 1 else math.inf,
                "rescoring_moved": best != 0,
            }
        rows.append((res, margins))
    return rows


def finite(x):
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def make_model_goldens(name, rel_dir):
    model_dir = ROOT / rel_dir
    cfg = yaml.safe_load((model_dir / "train.yaml").read_text())
    model = load_model_dir(str(model_dir))
    reverse_weight = model.reverse_weight if model.is_bidirectional else 0.0
    units = [line.split()[0] for line in (model_dir / "units.txt").read_text().splitlines() if line.strip()]
    feats = load_features(model_dir, cfg)
    keys = sorted(feats, key=lambda k: -feats[k][2].shape[0])  # the Recognizer's order

    def run(noise_seed=None, alone=False):
        arrs = [feats[k][2] for k in keys]
        if noise_seed is not None:
            rng = np.random.default_rng(noise_seed)
            if noise_seed % 2:  # odd trials: uniform; even: +-PERTURB on every value
                arrs = [a + rng.uniform(-PERTURB, PERTURB, a.shape).astype(np.float32) for a in arrs]
            else:
                arrs = [a + (PERTURB * rng.choice([-1.0, 1.0], a.shape)).astype(np.float32) for a in arrs]
        if alone:
            out = []
            for a in arrs:
                enc, lens = encode_batch(model, [a])
                out.append(decode_all(model, enc, lens, reverse_weight)[0][0])
            return out, None
        enc, lens = encode_batch(model, arrs)
        rows = decode_all(model, enc, lens, reverse_weight, with_margins=noise_seed is None)
        return [r for r, _ in rows], [m for _, m in rows]

    base, margins = run()
    trials = [run(seed)[0] for seed in range(PERTURB_TRIALS)]
    alone = run(alone=True)[0]
    alone_trials = [run(seed, alone=True)[0] for seed in range(2)]

    utts, kept, dropped = {}, 0, 0
    for i, key in enumerate(keys):
        wav, duration, f = feats[key]
        entry = {"wav": wav, "duration": duration, "frames": int(f.shape[0]),
                 "margins": {k: (finite(v) if isinstance(v, float) else v) for k, v in margins[i].items()}}
        for mode in MODES:
            tokens, score = base[i][mode]
            flips = sum(t[i][mode][0] != tokens for t in trials)
            score_moves = [abs(t[i][mode][1] - score) for t in trials
                           if score is not None and t[i][mode][0] == tokens]
            robust = flips == 0
            entry[mode] = {
                "tokens": list(tokens),
                "text": "".join(units[t] for t in tokens).replace("\u2581", " ").strip(),
                "score": finite(score),
                "kept": robust,
                "why": "" if robust else f"tokens change in {flips} of {PERTURB_TRIALS} perturbed trials",
                "score_checked": bool(robust and score is not None and max(score_moves) < SCORE_TOL_KEEP),
                "max_score_move": finite(max(score_moves)) if score_moves else None,
                "batch1_same": bool(robust and alone[i][mode][0] == tokens and
                                    all(t[i][mode][0] == tokens for t in alone_trials)),
            }
            kept += robust
            dropped += not robust
        utts[key] = entry
    doc = {
        "generator": "reference/make_e2e_goldens.py",
        "model": name,
        "model_dir": rel_dir,
        "options": {"beam": BEAM, "ctc_weight": CTC_WEIGHT, "rescoring_weight": RESCORING_WEIGHT,
                    "reverse_weight": reverse_weight, "batch_size": 16},
        "robustness": f"kept = tokens unchanged in {PERTURB_TRIALS} trials with the fbank perturbed by "
                      f"+-{PERTURB:g}; score_checked = the score moved < {SCORE_TOL_KEEP:g} there (compare at "
                      f"{SCORE_TOL:g}); batch1_same = the file encoded alone (no padding) gives the same tokens, "
                      "also perturbed",
        "kept": kept,
        "dropped": [[key, mode, e[mode]["why"]] for key, e in utts.items() for mode in MODES
                    if not e[mode]["kept"]],
        "utterances": utts,
    }
    return doc, kept, dropped


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "tests/data/e2e")
    parser.add_argument("models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(1)  # deterministic float sums
    args.out.mkdir(parents=True, exist_ok=True)
    total_kept = total_dropped = 0
    for name in args.models:
        doc, kept, dropped = make_model_goldens(name, MODELS[name])
        text = json.dumps(doc, indent=1, ensure_ascii=False)
        # token lists on one line each
        text = re.sub(r"\[\s*([-\d,\s]*?)\s*\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
        (args.out / f"{name}.json").write_text(text + "\n")
        total_kept += kept
        total_dropped += dropped
        print(f"{name}: kept {kept}, dropped {dropped}")
        for key, e in doc["utterances"].items():
            print(f"  {key:16s} " + "  ".join(
                f"{m[:12]}:{'K' if e[m]['kept'] else '-'}{'s' if e[m]['score_checked'] else ''}"
                f"{'1' if e[m]['batch1_same'] else ''}" for m in MODES) + f"  margins {e['margins']}")
    print(f"total: kept {total_kept}, dropped {total_dropped}")


if __name__ == "__main__":
    main()
