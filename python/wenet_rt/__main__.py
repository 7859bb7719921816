"""python -m wenet_rt transcribe MODEL_DIR files... : the `wenet-rt transcribe` command line, in Python.

Same options, same output: 'key text' lines (failed files: 'error: key: message' on stderr), or
with --format json one object per line with the keys and values of the C++ command line's.
--streaming decodes each file as one stream (wenet_rt.StreamingRecognizer, continuous decoding,
its final results joined), as `wenet-rt transcribe --streaming` does.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional, Sequence, Tuple

from . import MODES, Error, Recognizer, StreamingRecognizer, read_audio
from .streaming import append_text


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


def input_files(args: argparse.Namespace) -> List[Tuple[str, str]]:
    """(key, path) of --wav-scp's lines, then of the files given (key: the file's stem)."""
    files = read_wav_scp(args.wav_scp) if args.wav_scp else []
    files += [(os.path.splitext(os.path.basename(a))[0], a) for a in args.audio]
    if not files:
        raise Error("no audio given: pass files or --wav-scp")
    return files


def write_results(rows: List[dict], args: argparse.Namespace, load_s: float, wall_s: float, setup: str) -> int:
    """'key text' lines or JSON objects (rows: the command line's --format json objects) and the
    summary line on stderr, as the C++ command line writes them; 1 when every file failed."""
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    failed, audio_s = 0, 0.0
    try:
        for r in rows:
            audio_s += r["duration"]
            if "error" in r:
                failed += 1
                print(f"error: {r['key']}: {r['error']}", file=sys.stderr)
            if args.format == "json":
                # nlohmann::json objects: keys sorted, compact, UTF-8.
                out.write(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
            elif "error" not in r:
                out.write(f"{r['key']} {r['text']}\n")
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"{len(rows)} files ({failed} failed), {audio_s:.1f} s of audio in {wall_s:.3f} s (+{load_s:.2f} s load): "
          f"RTF {wall_s / audio_s if audio_s else 0:.5f}, {audio_s / wall_s if wall_s else 0:.0f}x real time "
          f"[{setup}]", file=sys.stderr)
    return 1 if failed == len(rows) else 0


def transcribe(args: argparse.Namespace) -> int:
    files = input_files(args)
    t0 = time.perf_counter()
    rec = Recognizer(args.model_dir, device=args.device, precision=args.precision, mode=args.mode, beam=args.beam,
                     ctc_weight=args.ctc_weight, rescoring_weight=args.rescoring_weight,
                     reverse_weight=args.reverse_weight, batch_size=args.batch_size,
                     batch_frames=args.batch_frames or None, max_segment_seconds=args.max_segment_seconds,
                     threads=args.threads or None)
    t1 = time.perf_counter()
    results = rec.transcribe([p for _, p in files], keys=[k for k, _ in files])
    t2 = time.perf_counter()
    return write_results([r.to_dict() for r in results], args, t1 - t0, t2 - t1, rec.config.describe())


def transcribe_streaming(args: argparse.Namespace) -> int:
    files = input_files(args)
    t0 = time.perf_counter()
    rec = StreamingRecognizer(args.model_dir, device=args.device, precision=args.precision, mode=args.mode,
                              beam=args.beam, ctc_weight=args.ctc_weight, rescoring_weight=args.rescoring_weight,
                              reverse_weight=args.reverse_weight, chunk_size=args.chunk_size,
                              num_left_chunks=args.left_chunks, max_streams=args.max_streams or None,
                              threads=args.threads or None)
    t1 = time.perf_counter()
    results = [{"key": k, "text": "", "tokens": [], "score": 0.0, "duration": 0.0, "word_pieces": []}
               for k, _ in files]
    max_open = rec.engine_config.max_streams
    open_streams = {}  # index -> Stream

    def take(i, s):
        res = results[i]
        for r in s.poll():
            if args.partial:
                print(f"{res['key']} {'final' if r.is_final else 'partial'}: {r.text}", file=sys.stderr)
            if not r.is_final or not r.nbest:
                continue
            best = r.nbest[0]
            res["text"] = append_text(res["text"], best.text)
            res["tokens"] += best.tokens
            res["word_pieces"] += [{"word": p.word, "start": p.start_ms, "end": p.end_ms} for p in best.word_pieces]
            res["score"] += best.score
            if r.utterance + 1 > 1:
                res["segments"] = r.utterance + 1

    def reap():
        for i, s in list(open_streams.items()):
            done = s.done
            take(i, s)
            if done:
                if s.error:
                    results[i]["error"] = s.error
                s.close()
                del open_streams[i]

    for i, (key, path) in enumerate(files):
        try:
            samples, rate = read_audio(path, rec.sample_rate)
        except Error as e:
            results[i]["error"] = str(e)
            continue
        results[i]["duration"] = samples.size / rate
        reap()
        while len(open_streams) >= max_open:
            time.sleep(0.001)
            reap()
        s = rec.stream(continuous_decoding=True)
        s.accept_waveform(samples, rate)
        s.finish()
        open_streams[i] = s
    while open_streams:
        time.sleep(0.001)
        reap()
    t2 = time.perf_counter()
    return write_results(results, args, t1 - t0, t2 - t1, rec.config.describe())


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
    t.add_argument("--precision", choices=["fp16", "fp32", "int8"], default="fp16",
                   help="fp16 | fp32 (cuda) | int8 (cpu: dynamic INT8 linear layers)")
    t.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    t.add_argument("--streaming", action="store_true",
                   help="decode chunk by chunk as a streaming client would (U2 / U2++ models); each file is one "
                        "stream with continuous decoding, its final results joined")
    t.add_argument("--chunk-size", type=int, default=16, help="--streaming: encoder frames per chunk (16 = 640 ms)")
    t.add_argument("--left-chunks", type=int, default=-1, help="--streaming: chunks of attention history (-1 = all)")
    t.add_argument("--partial", action="store_true",
                   help="--streaming: print partial and final results to stderr as they come")
    t.add_argument("--max-streams", type=int, default=0, help="--streaming: files decoded at once (0 = by device)")
    args = p.parse_args(argv)
    try:
        if args.command == "info":
            print(Recognizer(args.model_dir).describe())
            return 0
        return transcribe_streaming(args) if args.streaming else transcribe(args)
    except (Error, ValueError, OSError) as e:
        print(f"wenet-rt: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
