"""python -m wenet_rt transcribe MODEL_DIR files... : the `wenet-rt transcribe` command line, in Python.

Same options, same output: 'key text' lines (failed files: 'error: key: message' on stderr), or
with --format json one object per line with the keys and values of the C++ command line's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional, Sequence, Tuple

from . import MODES, Error, Recognizer


def read_wav_scp(path: str) -> List[Tuple[str, str]]:
    """Kaldi wav.scp: 'key path' per line; blank lines and #-comments skipped."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            parts = s.split(None, 1)
            if len(parts) != 2:
                raise Error(f"{path}:{n}: expected 'key path', got '{line.rstrip()}'")
            out.append((parts[0], parts[1]))
    return out


def result_json(r) -> str:
    # The C++ command line writes nlohmann::json objects: keys sorted, compact, UTF-8.
    return json.dumps(r.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def transcribe(args: argparse.Namespace) -> int:
    files = read_wav_scp(args.wav_scp) if args.wav_scp else []
    files += [(os.path.splitext(os.path.basename(a))[0], a) for a in args.audio]
    if not files:
        raise Error("no audio given: pass files or --wav-scp")
    t0 = time.perf_counter()
    rec = Recognizer(args.model_dir, device=args.device, precision=args.precision, mode=args.mode, beam=args.beam,
                     ctc_weight=args.ctc_weight, rescoring_weight=args.rescoring_weight,
                     reverse_weight=args.reverse_weight, batch_size=args.batch_size,
                     batch_frames=args.batch_frames or None, max_segment_seconds=args.max_segment_seconds,
                     threads=args.threads or None)
    t1 = time.perf_counter()
    results = rec.transcribe([p for _, p in files], keys=[k for k, _ in files])
    t2 = time.perf_counter()
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    failed, audio_s = 0, 0.0
    try:
        for r in results:
            audio_s += r.duration
            if r.error:
                failed += 1
                print(f"error: {r.key}: {r.error}", file=sys.stderr)
            if args.format == "json":
                out.write(result_json(r) + "\n")
            elif not r.error:
                out.write(f"{r.key} {r.text}\n")
    finally:
        if out is not sys.stdout:
            out.close()
    wall = t2 - t1
    print(f"{len(files)} files ({failed} failed), {audio_s:.1f} s of audio in {wall:.3f} s (+{t1 - t0:.2f} s load): "
          f"RTF {wall / audio_s if audio_s else 0:.5f}, {audio_s / wall if wall else 0:.0f}x real time "
          f"[{rec.config.describe()}]", file=sys.stderr)
    return 1 if failed == len(files) else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wenet_rt", description="wenet-rt: fast inference for WeNet models")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="describe a model directory with the configuration")
    info.add_argument("model_dir")
    t = sub.add_parser("transcribe", help="speech to text: audio files in, 'key text' lines out")
    t.add_argument("model_dir", help="WeNet model directory")
    t.add_argument("audio", nargs="*", help="audio files (WAV, FLAC, ...); key = file stem")
    t.add_argument("--wav-scp", help="Kaldi wav.scp: 'key path' per line")
    t.add_argument("--output", "-o", help="write results here instead of stdout")
    t.add_argument("--format", choices=["text", "json"], default="text")
    t.add_argument("--mode", choices=MODES, default="attention_rescoring")
    t.add_argument("--beam", type=int, default=10)
    t.add_argument("--ctc-weight", type=float, default=0.5)
    t.add_argument("--rescoring-weight", type=float, default=1.0)
    t.add_argument("--reverse-weight", type=float, default=None, help="default: train.yaml")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--batch-frames", type=int, default=0, help="0 = by device (cuda 48000, cpu 3000)")
    t.add_argument("--max-segment-seconds", type=float, default=30.0)
    t.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    t.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    t.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    args = p.parse_args(argv)
    try:
        if args.command == "info":
            print(Recognizer(args.model_dir).describe())
            return 0
        return transcribe(args)
    except (Error, ValueError, OSError) as e:
        print(f"wenet-rt: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
