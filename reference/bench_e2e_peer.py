#!/usr/bin/env python3
"""End-to-end transcription speed of the project's PyTorch reference (wenet_ref): the peer that
`wenet-rt bench --e2e` prints next to its own numbers, measured in the same run.

    python3 reference/bench_e2e_peer.py --model-dir DIR --files LIST.txt --out peer.json \\
        [--device cuda|cpu] [--dtype fp16|fp32] [--batch-size 64] [--beam 10] \\
        [--mode attention_rescoring|ctc_prefix_beam|ctc_greedy] [--ctc-weight 0.5] \\
        [--reverse-weight R] [--threads N] [--max-seconds S] [--warmup-files 8]

DIR: a WeNet model dir (train.yaml, final.pt, global_cmvn, units.txt) or a weights dump of
bench_peers.py (train.yaml, manifest.json, NAME.bin; no units.txt: texts are token ids).
LIST.txt: one audio path per line (key = file stem, repeats get _1, _2, ...), or `KEY PATH`.

The pipeline is WeNet's PyTorch decode (wenet/bin/recognize.py), batched like wenet-rt's
Recognizer: files in chunks of 8 x batch-size, each chunk read (soundfile if installed, else a
plain RIFF/WAV reader; first channel, PCM / 2^(bits-1)), resampled to the model's rate if needed,
Kaldi fbank on the device (torchaudio.compliance.kaldi.fbank if it imports, else
reference/demo/fbank.py; 25/10 ms, dither 0, samples x 32768, FP32), sorted by length (longest
first) and batched; global CMVN in FP32, encoder + CTC log-softmax on the device (FP16: model.half(),
log-softmax in FP32); the reference's CTC prefix beam search per utterance on the CPU
(wenet_ref/search.py); attention rescoring with ONE decoder call per batch over all its
utterances' N-best (left-to-right, plus right-to-left when reverse_weight > 0), scored as WeNet.

Timing: the first --warmup-files files are decoded once untimed; then the whole list is timed
(wall clock, CUDA synchronized at every stage boundary and at the end), split into stages:
read_fbank, encoder_ctc, search, rescoring. --max-seconds S stops after the first batch that ends
past S seconds: the rate then covers the files done so far (a prefix of the list, in chunk order)
and "complete" is false. Output JSON: peer, device, files, files_total, complete, audio_s, wall_s,
x_real_time, rtf, stages {name: seconds}, peak_cuda_mb (max_memory_allocated over the timed pass,
0 on CPU), texts {key: text}, errors {key: message}, settings.
"""

import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_peers import encoder_forward, load_dump, pad_mask  # noqa: E402
from wenet_ref.model import (WenetModel, cmvn_path, load_cmvn_file,  # noqa: E402
                             reverse_hyps, uses_cmvn)
from wenet_ref.search import ctc_greedy_search, ctc_prefix_beam_search, pad_hyps  # noqa: E402

try:  # imported up front: its import time is not the pipeline's
    from scipy.signal import resample_poly
except ImportError:
    resample_poly = None

MODES = ("attention_rescoring", "ctc_prefix_beam", "ctc_greedy")
STAGES = ("read_fbank", "encoder_ctc", "search", "rescoring")
MIN_FRAMES = {"conv2d": 7, "conv2d6": 11, "conv2d8": 15}  # fbank frames for one encoder frame


def read_wav(path):
    """(first channel as float32, rate) of a RIFF/WAV file: PCM 8..32 bit / 2^(bits-1), float."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file (install soundfile for other formats)")
    pos, fmt, pcm = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if cid == b"fmt ":
            fmt = list(struct.unpack("<HHIIHH", data[pos + 8:pos + 24]))
            if fmt[0] == 0xFFFE and size >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's tag
                fmt[0] = struct.unpack("<H", data[pos + 32:pos + 34])[0]
        elif cid == b"data":
            pcm = data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise ValueError(f"{path}: no fmt or data chunk")
    tag, channels, rate, _, block, bits = fmt
    n = len(pcm) // block
    raw = np.frombuffer(pcm[:n * block], np.uint8).reshape(n, block)[:, :block // channels]
    if tag == 1 and bits in (16, 24, 32):
        width = bits // 8
        b = np.zeros((n, 4), np.uint8)
        b[:, 4 - width:] = raw[:, :width]  # left-align in int32, sign comes along
        x = b.view("<i4")[:, 0].astype(np.float64) / 2.0 ** 31
    elif tag == 1 and bits == 8:
        x = (raw[:, 0].astype(np.float64) - 128.0) / 128.0
    elif tag == 3 and bits in (32, 64):
        x = raw.copy().view("<f4" if bits == 32 else "<f8")[:, 0]
    else:
        raise ValueError(f"{path}: unsupported WAV format tag {tag}, {bits} bits")
    return x.astype(np.float32), rate


def read_audio(path, rate):
    try:
        import soundfile
        x, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
        x = x[:, 0]
    except ImportError:
        x, file_rate = read_wav(path)
    if file_rate != rate:
        if resample_poly is None:
            raise ValueError(f"{path}: {file_rate} Hz, resampling to {rate} Hz needs scipy")
        g = math.gcd(rate, file_rate)
        x = resample_poly(x, rate // g, file_rate // g).astype(np.float32)
    return x


def make_fbank(bins, rate, device):
    """(fbank(wave on device, normalized floats) -> (T, bins), name of the implementation)."""
    try:
        import torchaudio.compliance.kaldi as kaldi

        def fbank(w):
            return kaldi.fbank(w.unsqueeze(0) * 32768.0, num_mel_bins=bins, frame_length=25,
                               frame_shift=10, dither=0.0, energy_floor=0.0,
                               sample_frequency=rate)
        fbank(torch.zeros(rate // 10, device=device))  # fails here if unusable
        return fbank, "torchaudio.compliance.kaldi.fbank"
    except Exception:  # noqa: BLE001 - not installed, or not matching this torch
        sys.path.insert(0, os.path.join(HERE, "demo"))
        from fbank import KaldiFbank
        kf = KaldiFbank(bins, rate, device)
        return (lambda w: kf(w * 32768.0)), "reference/demo/fbank.py"


def load_wenet_dir(model_dir, cfg):
    """wenet_ref.load_model_dir, except that final.pt may leave out the `pe` tables (recomputed,
    as WeNet does; models/demo has none) and may hold FP16 weights."""
    pts = sorted(p for p in os.listdir(model_dir) if p.endswith(".pt"))
    ckpt = "final.pt" if "final.pt" in pts else pts[0]
    state = torch.load(os.path.join(model_dir, ckpt), map_location="cpu", weights_only=True)
    pe = state.get("encoder.embed.pos_enc.pe")
    in_state = "encoder.global_cmvn.mean" in state
    use_cmvn = uses_cmvn(cfg) or in_state
    cmvn = None
    if use_cmvn and not in_state:
        path, is_json = cmvn_path(cfg, model_dir)
        if path is None:
            raise FileNotFoundError(f"{model_dir}: cmvn file not found")
        cmvn = load_cmvn_file(path, is_json)
    model = WenetModel(cfg, pe_max_len=pe.size(1) if pe is not None else 5000, cmvn=cmvn,
                       use_cmvn=use_cmvn)
    missing, unexpected = model.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.endswith(".pe") and ".global_cmvn." not in k] + unexpected
    if bad or (use_cmvn and not in_state and cmvn is None):
        raise ValueError(f"{model_dir}/{ckpt}: missing or unexpected key {bad[0]!r}")
    return model.float().eval()


def decoder_logp(dec, memory, memory_mask, ys_in, ys_lens):
    """bench_peers.decoder_forward for either decoder (masks on the device), FP32 log-softmax."""
    length = ys_in.size(1)
    causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=ys_in.device))
    tgt_mask = (~pad_mask(ys_lens, length)).unsqueeze(1) & causal.unsqueeze(0)
    x, _ = dec.embed[1](dec.embed[0](ys_in))
    for layer in dec.decoders:
        x = layer(x, tgt_mask, memory, memory_mask)
    if dec.normalize_before:
        x = dec.after_norm(x)
    return torch.log_softmax(dec.output_layer(x).float(), dim=-1)


def token_scores(logp, targets, lens):
    """Sum over positions 0..lens of logp[h, pos, targets[h, pos]] (tokens, then eos), (H,)."""
    got = logp.gather(2, targets.to(logp.device).unsqueeze(2)).squeeze(2).cpu()
    valid = torch.arange(targets.size(1)).unsqueeze(0) <= lens.unsqueeze(1)
    return torch.where(valid, got, torch.zeros(())).sum(1)


class Peer:

    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        with open(os.path.join(args.model_dir, "train.yaml")) as f:
            cfg = yaml.safe_load(f)
        has_pt = any(p.endswith(".pt") for p in os.listdir(args.model_dir))
        dump = not has_pt and os.path.isfile(os.path.join(args.model_dir, "manifest.json"))
        model = load_dump(args.model_dir) if dump else load_wenet_dir(args.model_dir, cfg)
        units = os.path.join(args.model_dir, "units.txt")
        self.units = None
        if os.path.isfile(units):
            with open(units, encoding="utf-8") as f:
                self.units = [ln.split()[0] for ln in f if ln.strip()]
        conf = (cfg.get("dataset_conf") or {}).get("fbank_conf") or {}
        if conf.get("frame_length", 25) != 25 or conf.get("frame_shift", 10) != 10:
            raise SystemExit(f"{args.model_dir}: expected 25/10 ms fbank frames")
        self.rate = int(((cfg.get("dataset_conf") or {}).get("resample_conf") or {})
                        .get("resample_rate", 16000))
        self.fbank, self.fbank_name = make_fbank(int(conf.get("num_mel_bins", cfg["input_dim"])),
                                                 self.rate, self.device)
        self.cmvn = model.encoder.global_cmvn  # kept FP32, applied before the FP16 encoder
        model.encoder.global_cmvn = None
        if self.cmvn is not None:
            self.cmvn = self.cmvn.to(self.device)
        self.dtype = torch.float16 if args.dtype == "fp16" else torch.float32
        self.model = model.to(self.device, self.dtype).eval()
        self.bi = model.is_bidirectional
        if args.reverse_weight is None:
            args.reverse_weight = model.reverse_weight if self.bi else 0.0
        self.min_frames = MIN_FRAMES.get((cfg.get("encoder_conf") or {}).get("input_layer"), 7)
        self.stages = dict.fromkeys(STAGES, 0.0)
        self.errors = {}

    def text(self, tokens):
        if self.units is None:
            return " ".join(map(str, tokens))
        return "".join(self.units[t] for t in tokens).replace("\u2581", " ").strip()

    def tick(self, stage, t0):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t1 = time.perf_counter()
        self.stages[stage] += t1 - t0
        return t1

    def load_chunk(self, items):
        """[(key, path)] -> [(key, seconds, fbank on device)], longest first (stable)."""
        out = []
        for key, path in items:
            try:
                wave = read_audio(path, self.rate)
            except Exception as e:  # noqa: BLE001 - reported per file, as wenet-rt does
                self.errors[key] = f"{type(e).__name__}: {e}"
                continue
            feats = self.fbank(torch.from_numpy(wave).to(self.device))
            if feats.size(0) < self.min_frames:
                self.errors[key] = f"audio of {len(wave) / self.rate:.3f} s is too short"
                continue
            out.append((key, len(wave) / self.rate, feats))
        return sorted(out, key=lambda u: -u[2].size(0))

    @torch.inference_mode()
    def decode_batch(self, batch, t0):
        """batch: [(key, seconds, feats)] -> {key: text}; adds stage times from t0 on."""
        a, m, dev = self.args, self.model, self.device
        lens = torch.tensor([f.size(0) for _, _, f in batch], device=dev)
        x = torch.nn.utils.rnn.pad_sequence([f for _, _, f in batch], batch_first=True)
        t0 = self.tick("read_fbank", t0)
        if self.cmvn is not None:
            x = self.cmvn(x)
        enc, masks = encoder_forward(m, x.to(self.dtype), lens)
        ctc = torch.log_softmax(m.ctc.ctc_lo(enc).float(), dim=-1).cpu()
        enc_lens = masks.squeeze(1).sum(1).tolist()
        t0 = self.tick("encoder_ctc", t0)
        if a.mode == "ctc_greedy":
            best = [ctc_greedy_search(ctc[b], n, m.blank_id) for b, n in enumerate(enc_lens)]
            self.tick("search", t0)
            return {k: self.text(t) for (k, _, _), t in zip(batch, best)}
        found = [ctc_prefix_beam_search(ctc[b], n, a.beam, m.blank_id)
                 for b, n in enumerate(enc_lens)]
        t0 = self.tick("search", t0)
        if a.mode == "ctc_prefix_beam":
            return {k: self.text(nb[0]) for (k, _, _), (nb, _) in zip(batch, found)}
        # Attention rescoring: every utterance's N-best in one decoder call.
        hyps = [h for nb, _ in found for h in nb]
        owner = torch.tensor([b for b, (nb, _) in enumerate(found) for _ in nb], device=dev)
        ctc_scores = torch.tensor([s for _, sc in found for s in sc], dtype=torch.float64)
        hyps_in, hyps_lens = pad_hyps(hyps, m.sos, m.eos)
        eos_col = torch.full((len(hyps), 1), m.eos, dtype=torch.long)
        mem = enc.index_select(0, owner)  # a copy per hypothesis, as WeNet's repeat
        mem_mask = masks.index_select(0, owner)
        ys_lens = hyps_lens.to(dev)
        dec = m.decoder.left_decoder if self.bi else m.decoder
        logp = decoder_logp(dec, mem, mem_mask, hyps_in.to(dev), ys_lens)
        score = token_scores(logp, torch.cat([hyps_in[:, 1:], eos_col], 1), hyps_lens - 1)
        rw = a.reverse_weight
        if self.bi and rw > 0:
            r_in = reverse_hyps(hyps_in, hyps_lens, m.eos)
            logp = decoder_logp(m.decoder.right_decoder, mem, mem_mask, r_in.to(dev), ys_lens)
            r_score = token_scores(logp, torch.cat([r_in[:, 1:], eos_col], 1), hyps_lens - 1)
            score = score * (1 - rw) + r_score * rw
        score = score + (ctc_scores * a.ctc_weight).float()
        texts, start = {}, 0
        for (key, _, _), (nb, _) in zip(batch, found):
            best = int(torch.argmax(score[start:start + len(nb)]))  # first maximum wins
            texts[key] = self.text(nb[best])
            start += len(nb)
        self.tick("rescoring", t0)
        return texts

    def run(self, items, max_seconds=0.0):
        """Decodes items [(key, path)]; returns (texts, audio seconds, wall seconds, complete)."""
        bs, texts, audio = self.args.batch_size, {}, 0.0
        start = time.perf_counter()
        for c in range(0, len(items), 8 * bs):
            t0 = time.perf_counter()
            utts = self.load_chunk(items[c:c + 8 * bs])
            for s in range(0, len(utts), bs):
                texts.update(self.decode_batch(utts[s:s + bs], t0))
                audio += sum(u[1] for u in utts[s:s + bs])
                t0 = time.perf_counter()
                if max_seconds > 0 and t0 - start > max_seconds:
                    return texts, audio, t0 - start, False
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return texts, audio, time.perf_counter() - start, True


def read_list(path):
    items, seen = [], {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            parts = line.split(maxsplit=1)
            if len(parts) == 2 and not os.path.exists(line):
                key, wav = parts
            else:
                wav = line
                key = os.path.splitext(os.path.basename(wav))[0]
            n = seen.get(key, 0)
            seen[key] = n + 1
            items.append((key if n == 0 else f"{key}_{n}", wav))
    return items


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--files", required=True, help="text file, one audio path (or KEY PATH) a line")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=("fp16", "fp32"), default=None,
                   help="default: fp16 on cuda, fp32 on cpu")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--mode", choices=MODES, default="attention_rescoring")
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--ctc-weight", type=float, default=0.5)
    p.add_argument("--reverse-weight", type=float, default=None,
                   help="default: model_conf.reverse_weight (bitransformer), else 0")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--max-seconds", type=float, default=0.0,
                   help="stop after this much wall time (0: no limit); the rate covers a prefix")
    p.add_argument("--warmup-files", type=int, default=8, help="decoded once first, untimed")
    args = p.parse_args(argv)
    args.dtype = args.dtype or ("fp16" if args.device.startswith("cuda") else "fp32")
    if args.batch_size < 1 or args.beam < 1:
        p.error("expected --batch-size >= 1 and --beam >= 1")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False  # FP32 means FP32, as in bench_peers.py
    torch.backends.cudnn.allow_tf32 = False

    items = read_list(args.files)
    if not items:
        p.error(f"{args.files}: no files")
    peer = Peer(args)
    cuda = peer.device.type == "cuda"
    peer.run(items[:args.warmup_files])
    peer.stages = dict.fromkeys(STAGES, 0.0)
    peer.errors = {}
    if cuda:
        torch.cuda.synchronize(peer.device)
        torch.cuda.reset_peak_memory_stats(peer.device)
    texts, audio, wall, complete = peer.run(items, args.max_seconds)
    doc = {
        "peer": f"pytorch reference (wenet_ref) {args.dtype}",
        "device": torch.cuda.get_device_name(peer.device) if cuda else "cpu",
        "files": len(texts), "files_total": len(items), "complete": complete,
        "audio_s": round(audio, 3), "wall_s": round(wall, 4),
        "x_real_time": audio / wall if wall > 0 else 0.0,
        "rtf": wall / audio if audio > 0 else 0.0,
        "stages": {k: round(v, 4) for k, v in peer.stages.items()},
        "peak_cuda_mb": torch.cuda.max_memory_allocated(peer.device) / 2**20 if cuda else 0.0,
        "settings": {"mode": args.mode, "batch_size": args.batch_size, "beam": args.beam,
                     "ctc_weight": args.ctc_weight, "reverse_weight": args.reverse_weight,
                     "threads": torch.get_num_threads(), "max_seconds": args.max_seconds,
                     "warmup_files": args.warmup_files, "fbank": peer.fbank_name,
                     "torch": torch.__version__},
        "texts": texts, "errors": peer.errors,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
    os.replace(tmp, args.out)
    print(f"{doc['peer']} on {doc['device']}: {doc['files']}/{len(items)} files, {audio:.1f} s of "
          f"audio in {wall:.3f} s: {doc['x_real_time']:.1f}x real time (RTF {doc['rtf']:.5f}); "
          f"stages {doc['stages']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
