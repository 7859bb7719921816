#!/usr/bin/env python3
"""Trains the demo WeNet model on make_data.py's synthetic speech and writes a WeNet model dir.

    python3 reference/demo/train.py --data DATA --out OUTDIR [--minutes 6.5] [--tiny]

The model is the project's reference (reference/wenet_ref: WeNet's architecture and parameter
names), a U2++ streaming conformer (use_dynamic_chunk, causal conv module with layer_norm, all
left chunks) trained here with WeNet's recipe: dynamic chunk training (WeNet's
add_optional_chunk_mask: per batch a random chunk of 1..25 encoder frames, or full context about
half the time), joint CTC / attention loss (ctc_weight 0.3, label
smoothing 0.1, bitransformer decoder with reverse_weight 0.3), SpecAugment (2 time masks up to
50 frames, capped at a fifth of the utterance; 2 frequency masks up to 10 bins), dropout 0.1 on
every residual branch, Adam with linear warmup then cosine decay over the time budget, bf16
autocast on CUDA, length-sorted batches, fixed seeds. Features: Kaldi fbank exactly as WeNet
(fbank.py: 80 bins, 25/10 ms, dither 0, x32768), global CMVN from the training features.

Writes OUTDIR/model/{train.yaml, final.pt (fp16 weights, fp32 CMVN; no positional tables: WeNet
and wenet-rt compute them), global_cmvn, units.txt}, OUTDIR/checkpoint.pt (fp32, for --init: a
second run continues training from it), OUTDIR/examples/ (5 held-out WAVs and
their text), OUTDIR/test_subset/ (a few dozen held-out WAVs, wav.scp relative to OUTDIR, text),
OUTDIR/results.json, and prints WER on the held-out set for CTC greedy, CTC prefix beam and
attention rescoring (ctc_weight 0.5, reverse_weight 0.3: wenet-rt's defaults for this model), with
full context and streaming (decoding chunk 16, 8 and 4 frames = 640 / 320 / 160 ms, all left
chunks: the chunk-masked forward, equal to chunk-by-chunk for this causal model, see
reference/check_streaming.py). Evaluation is batched: encoder and rescoring decoder per 64
utterances, the prefix beam search in one process per core.
"""

import argparse
import collections
import concurrent.futures
import json
import math
import os
import random
import shutil
import sys
import time
import wave

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # reference/, for wenet_ref
sys.path.insert(0, HERE)
from fbank import KaldiFbank  # noqa: E402
from wer import edit_distance  # noqa: E402
from wenet_ref import from_config  # noqa: E402
from wenet_ref.layers import (ConvolutionModule, MultiHeadedAttention,  # noqa: E402
                              PositionwiseFeedForward)
from wenet_ref.model import cmvn_from_stats  # noqa: E402
from wenet_ref.search import (ctc_greedy_search, ctc_prefix_beam_search,  # noqa: E402
                              pad_hyps)

SPACE = "\u2581"  # "▁": WeNet's word boundary symbol; detokenizers turn it into a space
IGNORE_ID = -1
CTC_WEIGHT, LSM_WEIGHT, REVERSE_WEIGHT = 0.3, 0.1, 0.3
DECODE_CTC_WEIGHT = 0.5  # wenet-rt's (and WeNet's C++ runtime's) rescoring default
BEAM = 10
STREAM_CHUNKS = (16, 8, 4)  # decoding_chunk_size of the streaming evaluation (all left chunks)
MODES = ["ctc_greedy", "ctc_prefix_beam", "attention_rescoring"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# data

def read_list(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_wav(path):
    with wave.open(path) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != 16000:
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def compute_features(utts, data_dir, device, threads):
    """Kaldi fbank of every utterance, on `device`: (flat (frames, 80) float32, offsets, lengths).
    Utterances go through in length-sorted groups, padded and framed together."""
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        waves = list(pool.map(lambda u: read_wav(os.path.join(data_dir, u["wav"])), utts))
    fb = KaldiFbank(80, 16000, device)
    lens = [fb.num_frames(w.size) for w in waves]
    if min(lens) < 8:
        raise ValueError("an utterance shorter than 8 feature frames")
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    flat = torch.empty(int(offsets[-1]), 80, device=device)
    order = np.argsort([w.size for w in waves], kind="stable")
    for start in range(0, len(order), 256):
        group = order[start:start + 256]
        longest = max(waves[i].size for i in group)
        batch = np.zeros((len(group), longest), np.float32)
        for row, i in enumerate(group):
            batch[row, :waves[i].size] = waves[i]
        frames = torch.from_numpy(batch).to(device).unfold(1, fb.length, fb.shift)
        feats = fb.from_frames(frames.reshape(-1, fb.length)).view(len(group), frames.size(1), 80)
        for row, i in enumerate(group):
            flat[offsets[i]:offsets[i] + lens[i]] = feats[row, :lens[i]]
    return flat, torch.tensor(offsets[:-1], device=device), torch.tensor(lens, device=device)


def cmvn_stats(flat):
    """WeNet's global_cmvn JSON: per-bin sums and sums of squares (float64) and the frame count."""
    total = torch.zeros(flat.size(1), dtype=torch.float64, device=flat.device)
    squares = torch.zeros_like(total)
    for start in range(0, flat.size(0), 1 << 20):
        x = flat[start:start + (1 << 20)].double()
        total += x.sum(0)
        squares += (x * x).sum(0)
    return {"mean_stat": total.tolist(), "var_stat": squares.tolist(),
            "frame_num": int(flat.size(0))}


def make_units(texts):
    chars = sorted({c for t in texts for c in t.replace(" ", SPACE)})
    return ["<blank>", "<unk>"] + chars + ["<sos/eos>"]


def tokenize(text, unit_ids):
    return [unit_ids.get(c, 1) for c in text.replace(" ", SPACE)]


def detokenize(tokens, units):
    return "".join(units[t] for t in tokens).replace(SPACE, " ").strip()


def ctc_feasible(frames, tokens):
    """Whether CTC can align `tokens` to the conv2d-subsampled frames (a repeated token needs a
    blank between); very fast speech can fail this, and WeNet's data filter drops such too."""
    out = ((frames - 1) // 2 - 1) // 2
    return out >= len(tokens) + sum(a == b for a, b in zip(tokens, tokens[1:]))


def make_batches(lengths, max_frames, max_utts, keep):
    """Length-sorted batches of the utterances `keep` whose padded size (utterances x longest)
    stays within max_frames."""
    order = sorted(keep, key=lambda i: lengths[i])
    batches, cur = [], []
    for i in order:
        if cur and ((len(cur) + 1) * lengths[i] > max_frames or len(cur) >= max_utts):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


class FeatureStore:
    """Padded batches out of the flat feature tensor with one gather."""

    def __init__(self, flat, offsets, lens, tokens, device):
        self.flat, self.offsets, self.lens = flat, offsets, lens
        self.tokens, self.device = tokens, device

    def batch(self, idx):
        idx_t = torch.tensor(idx, device=self.device)
        lens = self.lens[idx_t]
        t = int(lens.max())
        pos = torch.arange(t, device=self.device)
        valid = pos[None, :] < lens[:, None]
        gather = (self.offsets[idx_t][:, None] + torch.minimum(pos[None, :], lens[:, None] - 1))
        feats = self.flat[gather] * valid[:, :, None]
        ys = [self.tokens[i] for i in idx]
        ys_lens = torch.tensor([len(y) for y in ys], device=self.device)
        ys_pad = torch.full((len(ys), max(len(y) for y in ys)), IGNORE_ID, dtype=torch.long)
        for row, y in enumerate(ys):
            ys_pad[row, :len(y)] = torch.tensor(y)
        return feats, lens, ys_pad.to(self.device), ys_lens


# ---------------------------------------------------------------------------------------------
# model and loss

def model_config(vocab, args):
    d = args.d_model
    return {
        "input_dim": 80, "output_dim": vocab, "model": "asr_model",
        "encoder": "conformer",
        "encoder_conf": {
            "output_size": d, "attention_heads": args.heads, "linear_units": 4 * d,
            "num_blocks": args.blocks, "dropout_rate": args.dropout,
            "positional_dropout_rate": args.dropout, "attention_dropout_rate": 0.0,
            "input_layer": "conv2d", "normalize_before": True, "cnn_module_kernel": 15,
            "use_cnn_module": True, "activation_type": "swish", "pos_enc_layer_type": "rel_pos",
            "selfattention_layer_type": "rel_selfattn", "macaron_style": True,
            "cnn_module_norm": "layer_norm",
            # U2++ streaming: dynamic chunk training (WeNet's add_optional_chunk_mask with
            # decoding_chunk_size 0), all left chunks, causal conv module
            "use_dynamic_chunk": True, "use_dynamic_left_chunk": False, "causal": True},
        "decoder": "bitransformer",
        "decoder_conf": {
            "attention_heads": args.heads, "linear_units": 4 * d,
            "num_blocks": args.decoder_blocks, "r_num_blocks": args.decoder_blocks,
            "dropout_rate": args.dropout, "positional_dropout_rate": args.dropout,
            "self_attention_dropout_rate": 0.0, "src_attention_dropout_rate": 0.0},
        "ctc": "ctc",
        "ctc_conf": {"ctc_blank_id": 0},
        "model_conf": {"ctc_weight": CTC_WEIGHT, "lsm_weight": LSM_WEIGHT,
                       "length_normalized_loss": False, "reverse_weight": REVERSE_WEIGHT},
        "cmvn": "global_cmvn",
        "cmvn_conf": {"cmvn_file": "global_cmvn", "is_json_cmvn": True},
        "dataset_conf": {
            "fbank_conf": {"num_mel_bins": 80, "frame_shift": 10, "frame_length": 25,
                           "dither": 0.0},
            "resample_conf": {"resample_rate": 16000},
            "spec_aug": True,
            "spec_aug_conf": {"num_t_mask": 2, "num_f_mask": 2, "max_t": 50, "max_f": 10}},
        "tokenizer": "char",
        "tokenizer_conf": {"symbol_table_path": "units.txt", "split_with_space": False,
                           "special_tokens": {"<blank>": 0, "<unk>": 1, "<sos>": vocab - 1,
                                              "<eos>": vocab - 1}},
        "grad_clip": 5,
        "optim": "adam",
        "optim_conf": {"lr": args.lr},
    }


def add_dropout(model, p):
    """WeNet drops out each residual branch (attention, feed-forward, conv module outputs);
    the reference model has no dropout, so add it with forward hooks (active in train mode)."""
    def hook(module, inputs, output):
        return F.dropout(output, p, module.training)
    for m in model.modules():
        if isinstance(m, (MultiHeadedAttention, PositionwiseFeedForward, ConvolutionModule)):
            m.register_forward_hook(hook)


def add_sos_eos(ys_pad, ys_lens, sos, eos):
    """WeNet's add_sos_eos: in = [sos] + y (eos padding), out = y + [eos] (IGNORE_ID padding)."""
    b = ys_pad.size(0)
    y = ys_pad.masked_fill(ys_pad == IGNORE_ID, eos)
    ys_in = torch.cat([torch.full((b, 1), sos, dtype=torch.long, device=y.device), y], 1)
    ys_out = torch.cat([ys_pad, torch.full((b, 1), IGNORE_ID, dtype=torch.long,
                                           device=y.device)], 1)
    ys_out[torch.arange(b, device=y.device), ys_lens] = eos
    return ys_in, ys_out


def reverse_padded(ys_pad, ys_lens):
    pos = torch.arange(ys_pad.size(1), device=ys_pad.device)[None, :]
    src = (ys_lens[:, None] - 1 - pos).clamp(min=0)
    return torch.where(pos < ys_lens[:, None], torch.gather(ys_pad, 1, src),
                       torch.full_like(ys_pad, IGNORE_ID))


def label_smoothing_loss(logits, target, smoothing):
    """WeNet's LabelSmoothingLoss (KL to the smoothed target, summed, / batch size)."""
    v = logits.size(-1)
    logp = torch.log_softmax(logits.float(), dim=-1).view(-1, v)
    target = target.reshape(-1)
    ignore = target == IGNORE_ID
    true = torch.full_like(logp, smoothing / (v - 1))
    true.scatter_(1, target.masked_fill(ignore, 0)[:, None], 1.0 - smoothing)
    kl = true * (torch.log(true) - logp)
    return kl.masked_fill(ignore[:, None], 0.0).sum() / logits.size(0)


def compute_loss(model, feats, lens, ys_pad, ys_lens):
    # decoding_chunk_size 0: WeNet's training mask, a random chunk per batch (full context about
    # half the time, else 1..25 frames with all left chunks) for a use_dynamic_chunk model
    enc, mask = model.encoder(feats, lens, 0)
    enc_lens = mask.squeeze(1).sum(1)
    b = feats.size(0)
    logp = torch.log_softmax(model.ctc.ctc_lo(enc).float(), dim=-1)
    loss_ctc = F.ctc_loss(logp.transpose(0, 1), ys_pad.clamp(min=0), enc_lens, ys_lens,
                          blank=0, reduction="sum", zero_infinity=True) / b
    ys_in, ys_out = add_sos_eos(ys_pad, ys_lens, model.sos, model.eos)
    r_in, r_out = add_sos_eos(reverse_padded(ys_pad, ys_lens), ys_lens, model.sos, model.eos)
    l2r = model.decoder.left_decoder(enc, mask, ys_in, ys_lens + 1)
    r2l = model.decoder.right_decoder(enc, mask, r_in, ys_lens + 1)
    loss_att = (1 - REVERSE_WEIGHT) * label_smoothing_loss(l2r, ys_out, LSM_WEIGHT) + \
        REVERSE_WEIGHT * label_smoothing_loss(r2l, r_out, LSM_WEIGHT)
    valid = ys_out != IGNORE_ID
    acc = ((l2r.argmax(-1) == ys_out) & valid).sum() / valid.sum()
    return CTC_WEIGHT * loss_ctc + (1 - CTC_WEIGHT) * loss_att, loss_ctc, loss_att, acc


def spec_augment(feats, lens, gen, max_t=50, max_f=10, num_t=2, num_f=2):
    """WeNet's spec_aug on raw fbank (masked values 0), per utterance; time masks are at most a
    fifth of the utterance long (WeNet's 50 frames would hide whole words of these short ones)."""
    b, t, f = feats.shape
    lens_c = lens.cpu().float()
    pos_t = torch.arange(t, device=feats.device)
    pos_f = torch.arange(f, device=feats.device)
    keep = torch.ones(b, t, 1, dtype=torch.bool, device=feats.device)
    for _ in range(num_t):
        start = (torch.rand(b, generator=gen) * lens_c).long()
        cap = torch.clamp(torch.minimum(torch.full_like(lens_c, max_t), lens_c / 5), min=1)
        width = 1 + (torch.rand(b, generator=gen) * cap).long()
        start, end = start.to(feats.device), (start + width).to(feats.device)
        keep &= ~((pos_t[None] >= start[:, None]) & (pos_t[None] < end[:, None]))[:, :, None]
    keepf = torch.ones(b, 1, f, dtype=torch.bool, device=feats.device)
    for _ in range(num_f):
        start = torch.randint(0, f, (b,), generator=gen)
        width = torch.randint(1, max_f + 1, (b,), generator=gen)
        start, end = start.to(feats.device), (start + width).to(feats.device)
        keepf &= ~((pos_f[None] >= start[:, None]) & (pos_f[None] < end[:, None]))[:, None, :]
    return feats * (keep & keepf)


# ---------------------------------------------------------------------------------------------
# evaluation

def _beam_job(job):
    """Worker: CTC prefix beam search of one utterance's (n, V) float32 log-probs."""
    logp, beam = job
    return ctc_prefix_beam_search(torch.from_numpy(logp), logp.shape[0], beam)


def _worker_init():
    torch.set_num_threads(1)


def make_pool(workers):
    """Processes for the prefix beam search (pure python, one core per utterance); spawned, not
    forked: the parent holds CUDA and OpenMP state."""
    if workers <= 1:
        return None
    import multiprocessing
    return concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init)


def rescore_batch(model, enc, enc_lens, nbests, ctc_scores, ctc_weight, reverse_weight,
                  return_scores=False):
    """Attention rescoring of several utterances' N-best in one decoder call per direction:
    enc (B, T, d) with valid lengths enc_lens (B,), nbests / ctc_scores per utterance. The scores
    of wenet_ref.search.attention_rescoring (decoder log-probs of the tokens and <eos>, l2r and
    r2l mixed by reverse_weight, + ctc_weight * CTC score; first maximum wins), summed with
    torch.sum instead of one token at a time (equal up to float32 rounding). Returns the best
    token list per utterance (and with return_scores every hyp's score)."""
    dev = enc.device
    owner = [b for b, nb in enumerate(nbests) for _ in nb]
    hyps = [h for nb in nbests for h in nb]
    hyps_in, hyps_lens = pad_hyps(hyps, model.sos, model.eos)
    hyps_in, hyps_lens = hyps_in.to(dev), hyps_lens.to(dev)
    own = torch.tensor(owner, device=dev)
    mem, mem_lens = enc[own], enc_lens[own]
    n, width = hyps_in.shape
    tok_len = hyps_lens - 1
    pos = torch.arange(width, device=dev)[None, :]
    tokens = hyps_in[:, 1:]  # (N, width - 1): tokens then eos padding
    target = torch.cat([tokens, torch.full((n, 1), model.eos, device=dev)], 1)
    # position len holds <eos>; beyond it nothing counts
    target = torch.where(pos == tok_len[:, None], torch.full_like(target, model.eos), target)
    valid = pos <= tok_len[:, None]
    l2r = model.decode(mem, mem_lens, hyps_in, hyps_lens)
    score = (torch.gather(l2r, 2, target[:, :, None])[:, :, 0] * valid).sum(1)
    if reverse_weight > 0 and model.is_bidirectional:
        r2l = model.decode(mem, mem_lens, hyps_in, hyps_lens, reverse=True)
        # position p < len predicts token len-1-p of the hyp, position len <eos>
        src = (tok_len[:, None] - 1 - pos).clamp(min=0, max=width - 2)
        r_target = torch.where(pos < tok_len[:, None], torch.gather(tokens, 1, src), target)
        r_score = (torch.gather(r2l, 2, r_target[:, :, None])[:, :, 0] * valid).sum(1)
        score = score * (1 - reverse_weight) + r_score * reverse_weight
    score = score.double().cpu().tolist()
    best, totals, k = [], [], 0
    for b, nb in enumerate(nbests):
        total = [score[k + i] + ctc_weight * ctc_scores[b][i] for i in range(len(nb))]
        i_best = max(range(len(nb)), key=lambda i: (total[i], -i))
        best.append(list(nb[i_best]))
        totals.append(total)
        k += len(nb)
    return (best, totals) if return_scores else best


def evaluate(model, store, idx, texts, units, device, modes, batch=64, chunk=-1, pool=None):
    """({mode: {utterance: hyp text}}, {mode: WER numbers}) for utterances idx, decoded with the
    reference search functions on the encoder output of decoding_chunk_size `chunk` (-1: full
    context; C > 0: WeNet's chunk-masked forward with all left chunks, which for this causal
    conformer equals chunk-by-chunk streaming: reference/check_streaming.py). Batched: encoder
    and rescoring decoder per `batch` utterances, prefix beam search in `pool`'s processes."""
    hyps = {m: {} for m in modes}
    order = sorted(idx, key=lambda i: int(store.lens[i]))
    need_beam = "ctc_prefix_beam" in modes or "attention_rescoring" in modes
    model.eval()
    with torch.no_grad(), torch.device(device):
        for s in range(0, len(order), batch):
            part = order[s:s + batch]
            feats, lens, _, _ = store.batch(part)
            enc, enc_lens = model.encode(feats, lens, chunk, -1)
            ctc = model.ctc_log_probs(enc).cpu()
            n_of = [int(x) for x in enc_lens.tolist()]
            for row, i in enumerate(part):
                if "ctc_greedy" in modes:
                    hyps["ctc_greedy"][i] = detokenize(ctc_greedy_search(ctc[row], n_of[row]),
                                                       units)
            if not need_beam:
                continue
            jobs = [(ctc[row, :n_of[row]].numpy().copy(), BEAM) for row in range(len(part))]
            beams = list(pool.map(_beam_job, jobs, chunksize=2)) if pool else \
                [_beam_job(j) for j in jobs]
            for row, i in enumerate(part):
                if "ctc_prefix_beam" in modes:
                    hyps["ctc_prefix_beam"][i] = detokenize(beams[row][0][0], units)
            if "attention_rescoring" in modes:
                best = rescore_batch(model, enc, enc_lens, [b[0] for b in beams],
                                     [b[1] for b in beams], DECODE_CTC_WEIGHT, REVERSE_WEIGHT)
                for row, i in enumerate(part):
                    hyps["attention_rescoring"][i] = detokenize(best[row], units)
    result = {}
    for m in modes:
        errs = sum(edit_distance(texts[i].split(), hyps[m][i].split()) for i in idx)
        words = sum(len(texts[i].split()) for i in idx)
        wrong = sum(hyps[m][i] != texts[i] for i in idx)
        result[m] = {"wer": errs / max(words, 1), "word_errors": errs, "words": words,
                     "sentence_errors": wrong, "sentences": len(idx)}
    return hyps, result


# ---------------------------------------------------------------------------------------------
# output

def save_model_dir(out, cfg, model, stats, units, header):
    import yaml
    os.makedirs(out, exist_ok=True)
    state = collections.OrderedDict()
    for k, v in model.state_dict().items():
        if k.endswith(".pe"):
            continue  # sinusoid tables: recomputed by WeNet and wenet-rt, 1.4 MB each in fp16
        v = v.detach().cpu()
        state[k] = v.float() if "global_cmvn" in k else v.half() if v.is_floating_point() else v
    torch.save(state, os.path.join(out, "final.pt"))
    with open(os.path.join(out, "train.yaml"), "w") as f:
        f.write(header)
        yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True, default_flow_style=False)
    with open(os.path.join(out, "global_cmvn"), "w") as f:
        json.dump(stats, f)
    with open(os.path.join(out, "units.txt"), "w") as f:
        f.writelines(f"{u} {i}\n" for i, u in enumerate(units))
    return state


def copy_utterances(utts, idx, data_dir, out_dir, rel_prefix):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "text"), "w") as txt, \
            open(os.path.join(out_dir, "wav.scp"), "w") as scp:
        for i in idx:
            u = utts[i]
            shutil.copyfile(os.path.join(data_dir, u["wav"]),
                            os.path.join(out_dir, u["key"] + ".wav"))
            txt.write(f"{u['key']} {u['txt']}\n")
            scp.write(f"{u['key']} {rel_prefix}{u['key']}.wav\n")


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="make_data.py's output")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=6.5, help="training time budget")
    ap.add_argument("--steps", type=int, default=0,
                    help="schedule over exactly this many steps instead of the time budget "
                         "(the time budget still stops training)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--d-model", type=int, default=144)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--decoder-blocks", type=int, default=3)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    ap.add_argument("--warmup", type=int, default=500, help="warmup steps")
    ap.add_argument("--max-frames", type=int, default=64000,
                    help="padded feature frames per batch")
    ap.add_argument("--max-utts", type=int, default=512)
    ap.add_argument("--amp", choices=["auto", "on", "off"], default="auto",
                    help="bf16 autocast (auto: on for CUDA)")
    ap.add_argument("--test-subset", type=int, default=30,
                    help="held-out utterances copied to OUTDIR/test_subset")
    ap.add_argument("--examples", type=int, default=5)
    ap.add_argument("--init", default="",
                    help="start from this checkpoint.pt (an earlier run's fp32 weights, same data) "
                         "to train longer than one time budget")
    ap.add_argument("--tiny", action="store_true",
                    help="CPU smoke test: 2 blocks x 64, 1 decoder block, small batches")
    args = ap.parse_args()
    if args.tiny:
        args.d_model, args.blocks, args.decoder_blocks = 64, 2, 1
        args.max_frames, args.warmup, args.lr = 4000, 30, 2e-3
    t_start = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    use_amp = args.amp == "on" or (args.amp == "auto" and device.type == "cuda")
    threads = os.cpu_count() or 1
    if device.type == "cpu":
        torch.set_num_threads(threads)
        torch.set_flush_denormal(True)  # denormal weights/activations slow x86 CPUs ~20x
    log(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else threads}"
        f" threads), torch {torch.__version__}, bf16 autocast {'on' if use_amp else 'off'}")

    train = read_list(os.path.join(args.data, "train.jsonl"))
    test = read_list(os.path.join(args.data, "test.jsonl"))
    train_set = {u["txt"] for u in train}
    leaked = [u["key"] for u in test if u["txt"] in train_set]
    if leaked:
        sys.exit(f"{len(leaked)} test sentences occur in train (first: {leaked[0]})")
    units = make_units(u["txt"] for u in train)
    unit_ids = {u: i for i, u in enumerate(units)}
    vocab = len(units)

    t0 = time.time()
    utts = train + test
    flat, offsets, lens = compute_features(utts, args.data, device, threads)
    n_train = len(train)
    train_frames = int(lens[:n_train].sum())
    stats = cmvn_stats(flat[:int(offsets[n_train - 1]) + int(lens[n_train - 1])])
    tokens = [tokenize(u["txt"], unit_ids) for u in utts]
    store = FeatureStore(flat, offsets, lens, tokens, device)
    log(f"features: {len(train)} train ({train_frames / 360000:.2f} h), {len(test)} test, "
        f"{vocab} units, in {time.time() - t0:.1f} s")

    cfg = model_config(vocab, args)
    cmvn = cmvn_from_stats(stats["mean_stat"], stats["var_stat"], stats["frame_num"])
    model = from_config(cfg, cmvn=cmvn).to(device)
    if args.init:
        init = torch.load(args.init, map_location="cpu", weights_only=True)
        model.load_state_dict(init["model"], strict=True)
        log(f"initialized from {args.init} (trained {init['steps']} steps before)")
    add_dropout(model, args.dropout)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: conformer {args.blocks} x {args.d_model} (ffn {4 * args.d_model}, "
        f"{args.heads} heads, kernel 15) + bitransformer {args.decoder_blocks}+"
        f"{args.decoder_blocks}; {n_params / 1e6:.2f} M parameters "
        f"({2 * n_params / 1e6:.1f} MB in fp16)")

    train_lens = lens[:n_train].tolist()
    keep = [i for i in range(n_train) if ctc_feasible(train_lens[i], tokens[i])]
    if len(keep) < n_train:
        log(f"left out {n_train - len(keep)} training utterances too fast for CTC "
            f"(fewer subsampled frames than tokens + repeats)")
    batches = make_batches(train_lens, args.max_frames, args.max_utts, keep)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9)
    gen = torch.Generator().manual_seed(args.seed)
    shuffle = random.Random(args.seed)
    budget = args.minutes * 60
    dev_idx = list(range(n_train, n_train + min(len(test), 200)))
    texts = [u["txt"] for u in utts]

    def lr_at(step, elapsed):
        progress = step / args.steps if args.steps else elapsed / budget
        warm = min(1.0, (step + 1) / args.warmup)
        return args.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1))))

    log(f"training: {len(batches)} batches per epoch (<= {args.max_frames} padded frames), "
        f"budget {args.minutes} min" + (f", {args.steps} steps" if args.steps else ""))
    step, epoch, t_train = 0, 0, time.time()
    done = False
    history = []
    next_dev = budget / 8
    while not done:
        epoch += 1
        shuffle.shuffle(batches)
        model.train()
        sums, count, t_epoch = np.zeros(4), 0, time.time()
        for b in batches:
            elapsed = time.time() - t_train
            if elapsed >= budget or (args.steps and step >= args.steps):
                done = True
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(step, elapsed)
            feats, flens, ys_pad, ys_lens = store.batch(b)
            feats = spec_augment(feats, flens, gen)
            with torch.device(device), torch.autocast(device.type, dtype=torch.bfloat16,
                                                      enabled=use_amp):
                loss, l_ctc, l_att, acc = compute_loss(model, feats, flens, ys_pad, ys_lens)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            if torch.isfinite(grad_norm):
                opt.step()
            step += 1
            if step % 50 == 0 or step == 1:
                vals = torch.stack([loss, l_ctc, l_att, acc]).detach().float().cpu().numpy()
                sums += vals
                count += 1
                if step % 200 == 0 or step == 1:
                    log(f"step {step} epoch {epoch}: loss {vals[0]:.2f} ctc {vals[1]:.2f} "
                        f"att {vals[2]:.2f} acc {vals[3]:.3f} lr {opt.param_groups[0]['lr']:.2e}")
        if not count:
            continue
        msg = (f"epoch {epoch} done: {step} steps, {time.time() - t_epoch:.1f} s, mean loss "
               f"{sums[0] / count:.3f}")
        if done or time.time() - t_train >= next_dev:  # a progress check about every budget/8
            next_dev += budget / 8
            _, quick = evaluate(model, store, dev_idx, texts, units, device, ["ctc_greedy"])
            _, quick16 = evaluate(model, store, dev_idx, texts, units, device, ["ctc_greedy"],
                                  chunk=16)
            wer, wer16 = quick["ctc_greedy"]["wer"], quick16["ctc_greedy"]["wer"]
            history.append({"epoch": epoch, "step": step, "minutes": (time.time() - t_train) / 60,
                            "loss": float(sums[0] / count), "dev_ctc_greedy_wer": wer,
                            "dev_ctc_greedy_wer_chunk16": wer16})
            msg += (f", CTC greedy WER on {len(dev_idx)} held-out {100 * wer:.2f}% "
                    f"(chunk 16: {100 * wer16:.2f}%)")
        log(msg)
    train_s = time.time() - t_train
    log(f"trained {step} steps ({epoch} epochs, the last partial) in {train_s / 60:.2f} min")

    # Save fp16 weights, then evaluate exactly what was saved (fp16 weights, fp32 compute).
    header = (f"# WeNet model dir written by reference/demo/train.py (seed {args.seed}): "
              f"synthetic espeak-ng English,\n# {len(train)} utterances, {step} steps in "
              f"{train_s / 60:.1f} min; Adam peak lr {args.lr}, warmup {args.warmup}, cosine decay.\n")
    model_dir = os.path.join(args.out, "model")
    state = save_model_dir(model_dir, cfg, model, stats, units, header)
    prior = init["steps"] if args.init else 0
    torch.save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "steps": prior + step}, os.path.join(args.out, "checkpoint.pt"))
    eval_model = from_config(cfg, cmvn=cmvn)
    missing, unexpected = eval_model.load_state_dict({k: v.float() for k, v in state.items()},
                                                     strict=False)
    assert not unexpected and all(k.endswith(".pe") for k in missing), (missing, unexpected)
    eval_model.to(device)
    size_mb = os.path.getsize(os.path.join(model_dir, "final.pt")) / 1e6
    log(f"wrote {model_dir} (final.pt {size_mb:.2f} MB)")

    t0 = time.time()
    pool = make_pool(threads)
    test_idx = list(range(n_train, len(utts)))
    modes = MODES
    hyps, result = evaluate(eval_model, store, test_idx, texts, units, device, modes, pool=pool)
    log(f"held-out test set ({len(test_idx)} utterances, sentences never in training), "
        f"full context, evaluated in {time.time() - t0:.1f} s:")

    def show(res):
        for m in modes:
            r = res[m]
            log(f"  {m:20s} WER {100 * r['wer']:6.2f}% ({r['word_errors']}/{r['words']} words)"
                f", sentence errors {r['sentence_errors']}/{r['sentences']}")
    show(result)
    shown = [i for i in test_idx if hyps["attention_rescoring"][i] != texts[i]][:10]
    for i in shown:
        log(f"  REF {texts[i]}\n{'':13}HYP {hyps['attention_rescoring'][i]}")
    # Streaming: decoding_chunk_size C, all left chunks (WeNet's chunk-masked forward, equal to
    # chunk-by-chunk for this causal conformer: reference/check_streaming.py); the rescoring
    # decoder sees the whole utterance's streaming encoder output, as at an endpoint.
    stream_hyps, stream_result = {}, {}
    for c in STREAM_CHUNKS:
        t1 = time.time()
        stream_hyps[c], stream_result[c] = evaluate(eval_model, store, test_idx, texts, units,
                                                    device, modes, chunk=c, pool=pool)
        log(f"streaming, decoding chunk {c} ({c * 40} ms), all left chunks, evaluated in "
            f"{time.time() - t1:.1f} s:")
        show(stream_result[c])

    # Examples: presentable test utterances (make_data.py puts them first) that every mode gets
    # exactly right, one per voice.
    # A conformer's outputs depend a little on how much padding the batch gives an utterance
    # (WeNet's conv-module semantics), so an example must be right alone and in a batch.
    # Streaming with chunk 16 must get them right too (chunk 8 and 4 need not).
    candidates = [i for i in test_idx if utts[i].get("presentable")]
    alone = evaluate(eval_model, store, candidates, texts, units, device, modes, batch=1,
                     pool=pool)[0] if candidates else {}
    picked, voices = [], set()
    for i in candidates:
        right = all(hyps[m][i] == texts[i] and alone[m][i] == texts[i] and
                    stream_hyps[16][m][i] == texts[i] for m in modes) if 16 in stream_hyps else \
            all(hyps[m][i] == texts[i] and alone[m][i] == texts[i] for m in modes)
        if right and utts[i]["voice"] not in voices:
            picked.append(i)
            voices.add(utts[i]["voice"])
        if len(picked) == args.examples:
            break
    exact = len(picked)
    if exact < args.examples:  # an undertrained model: still ship examples, and say so
        picked += [i for i in candidates if i not in picked][:args.examples - exact]
        log(f"WARNING: only {exact} of {len(candidates)} example candidates are transcribed "
            f"exactly in every mode; the examples include {len(picked) - exact} that are not")
    if picked:
        together, _ = evaluate(eval_model, store, picked, texts, units, device, modes,
                               batch=len(picked), pool=pool)
        if any(together[m][i] != texts[i] for m in modes for i in picked):
            log("WARNING: decoded as one batch, the examples are not all transcribed exactly")
    if pool:
        pool.shutdown()
    eval_s = time.time() - t0
    copy_utterances(utts, picked, args.data, os.path.join(args.out, "examples"), "examples/")
    subset = test_idx[:args.test_subset]
    copy_utterances(utts, subset, args.data, os.path.join(args.out, "test_subset"),
                    "test_subset/")
    sub_result = {m: {"wer": sum(edit_distance(texts[i].split(), hyps[m][i].split())
                                 for i in subset) / sum(len(texts[i].split()) for i in subset)}
                  for m in modes}
    with open(os.path.join(args.out, "test_hyps.txt"), "w") as f:
        for i in test_idx:
            f.write(f"{utts[i]['key']}\tREF {texts[i]}\n")
            for m in modes:
                f.write(f"{utts[i]['key']}\t{m} {hyps[m][i]}\n")
            for c in STREAM_CHUNKS:
                for m in modes:
                    f.write(f"{utts[i]['key']}\t{m}@chunk{c} {stream_hyps[c][m][i]}\n")
    results = {
        "seed": args.seed, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "bf16_autocast": use_amp,
        "train_utterances": len(train), "train_hours": train_frames / 360000,
        "test_utterances": len(test), "units": vocab, "parameters": n_params,
        "final_pt_mb": size_mb, "steps": step, "epochs": epoch, "train_minutes": train_s / 60,
        "eval_minutes": eval_s / 60,
        "total_minutes": (time.time() - t_start) / 60, "decode": {
            "beam": BEAM, "ctc_weight": DECODE_CTC_WEIGHT, "reverse_weight": REVERSE_WEIGHT},
        "streaming_model": {k: cfg["encoder_conf"][k] for k in
                            ("use_dynamic_chunk", "use_dynamic_left_chunk", "causal")},
        "test": result,
        "test_streaming": {f"chunk{c}": {"decoding_chunk_size": c, "num_decoding_left_chunks": -1,
                                         **stream_result[c]} for c in STREAM_CHUNKS},
        "test_subset": {"utterances": len(subset), **sub_result},
        "examples": [utts[i]["key"] for i in picked], "examples_exact": exact,
        "history": history,
        "args": vars(args)}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    log(f"examples ({len(picked)} of {len(candidates)} presentable candidates, {exact} exact): "
        f"{', '.join(utts[i]['key'] + ' ' + repr(texts[i]) for i in picked)}")
    log(f"done in {(time.time() - t_start) / 60:.2f} min; results in "
        f"{os.path.join(args.out, 'results.json')}")


if __name__ == "__main__":
    main()
