"""python -m wenet_rt.triton MODEL_DIR : wenet-rt behind NVIDIA Triton Inference Server (PyTriton).

    pip install ".[triton]"     # nvidia-pytriton (the real tritonserver, in the wheel)
    python -m wenet_rt.triton models/demo --device cuda --instances 2 --http-port 8000 --grpc-port 8001

Model `wenet_rt` (offline, dynamic batching). Inputs, per row of a request, one of:
    WAV          bytes   [1]   an audio file's bytes (WAV, FLAC, OGG...: what the command line reads)
    PCM          float32 [-1]  samples, normalized to [-1, 1)
    SAMPLE_RATE  int32   [1]   with PCM
Outputs, per row:
    TEXT         bytes   [1]   UTF-8 transcript ('' on failure)
    TOKENS       int32   [-1]  token ids (padded with -1 to the longest row of the request, >= 1 wide)
    TIMESTAMPS   int32   [-1, 2] (start_ms, end_ms) per token (padded with -1 likewise)
    SCORE        float32 [1]
    ERROR        bytes   [1]   '' or why this row failed (unreadable audio, too short...)

Triton's dynamic batcher gathers concurrent requests (up to --max-batch-size rows, waiting at
most --max-queue-delay-us); each model instance (--instances) owns a wenet_rt.Recognizer, which
batches the gathered rows by length as the command line does. Requests of WAV bytes batch
together whatever their lengths; PCM requests batch with others of the same length (Triton's
rule for variable-sized inputs).

Model `wenet_rt_streaming` (U2 / U2++ models; served unless --streaming off): one engine stream per
sequence. PyTriton 0.7 exposes neither Triton's sequence batcher (its ModelConfig knows only the
dynamic batcher) nor a request's correlation id and START / END flags (its proxy passes only the
declared inputs and the request parameters), so the sequence is named by inputs that the model
function handles, with the stream's state in the engine (keyed by SEQUENCE_ID, shared by all
instances: requests of one sequence may reach any instance, in order since a client sends the
next piece after the previous answer). Per row:
    SEQUENCE_ID  uint64  [1]   the stream (one per client / utterance), != 0
    START        bool    [1]   first request of the sequence (a new stream; an old one of the same id ends)
    END          bool    [1]   last request: the rest is decoded and the final result returned
    PCM          float32 [-1]  the next piece of audio, in [-1, 1), any length (optional: END alone)
    SAMPLE_RATE  int32   [1]   with PCM: the model's rate (16000 for the demo)
Outputs, per row (after every complete chunk of the audio so far is decoded):
    TEXT         bytes   [1]   the transcript so far: final utterances joined, then the partial one
    PARTIAL      bytes   [1]   the utterance in progress ('' at END)
    IS_FINAL     bool    [1]   True in the answer to END (the stream is closed)
    TOKENS       int32   [-1]  token ids of the final utterances so far (padded with -1, >= 1 wide)
    TIMESTAMPS   int32   [-1, 2] (start_ms, end_ms) per token of TOKENS, ms from the stream's start
    ERROR        bytes   [1]   '' or why this row failed (unknown sequence id, wrong rate...)
Each stream decodes with continuous decoding (an endpoint ends an utterance, the next one starts).
Sequences idle for --stream-idle-seconds are dropped. Triton's dynamic batcher gathers requests of
many sequences; the engine batches the chunks of all streams in one encoder call regardless.

PyTriton runs the Python stub with the interpreter that runs this module; a python3 built by
pyenv fails there ('_thread.RLock' object has no attribute '_recursion_count'): use a venv made
with the distribution's python3.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import MODES, Error, Recognizer, Result, StreamingRecognizer
from .streaming import Stream, append_text

MODEL_NAME = "wenet_rt"
STREAMING_MODEL_NAME = "wenet_rt_streaming"
_LOG = logging.getLogger("wenet_rt.triton")
_START_ATTEMPTS = 3  # Triton starts (see serve: a PyTriton race)


def results_to_outputs(results: Sequence[Result]) -> Dict[str, np.ndarray]:
    """One request's outputs from its rows' results (TOKENS / TIMESTAMPS padded with -1)."""
    n = len(results)
    # At least one column: PyTriton cannot return a zero-sized tensor (a failed or silent row).
    longest = max([1] + [len(r.tokens) for r in results])
    tokens = np.full((n, longest), -1, dtype=np.int32)
    stamps = np.full((n, longest, 2), -1, dtype=np.int32)
    for i, r in enumerate(results):
        tokens[i, : len(r.tokens)] = r.tokens
        if r.word_pieces:
            stamps[i, : len(r.word_pieces)] = r.timestamps
    return {
        "TEXT": np.array([[r.text.encode("utf-8")] for r in results], dtype=np.object_),
        "TOKENS": tokens,
        "TIMESTAMPS": stamps,
        "SCORE": np.array([[r.score] for r in results], dtype=np.float32),
        "ERROR": np.array([[r.error.encode("utf-8")] for r in results], dtype=np.object_),
    }


class RecognizerInstance:
    """One Triton model instance: its own Recognizer; requests are lists of rows of WAV or PCM."""

    def __init__(self, recognizer: Recognizer, spool_dir: str) -> None:
        self.rec = recognizer
        self.spool_dir = spool_dir  # WAV bytes are handed to the engine's reader as files here (tmpfs)
        self._count = 0
        self._lock = threading.Lock()

    def _spool(self, data: bytes) -> str:
        with self._lock:
            self._count += 1
            n = self._count
        path = os.path.join(self.spool_dir, f"{threading.get_ident()}-{n}.audio")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def __call__(self, requests: List) -> List[Dict[str, np.ndarray]]:
        audio: List[object] = []
        rates: List[Optional[int]] = []
        rows: List[int] = []
        spooled: List[str] = []
        try:
            for req in requests:
                data = req.data
                if "WAV" in data:
                    wav = data["WAV"].reshape(data["WAV"].shape[0], -1)
                    for b in range(wav.shape[0]):
                        blob = wav[b, 0]
                        path = self._spool(blob if isinstance(blob, bytes) else bytes(blob))
                        spooled.append(path)
                        audio.append(path)
                        rates.append(None)
                    rows.append(wav.shape[0])
                elif "PCM" in data:
                    if "SAMPLE_RATE" not in data:
                        raise ValueError("PCM input needs SAMPLE_RATE")
                    pcm = np.asarray(data["PCM"], dtype=np.float32)
                    pcm = pcm.reshape(pcm.shape[0], -1)
                    sr = np.asarray(data["SAMPLE_RATE"]).reshape(pcm.shape[0], -1)
                    for b in range(pcm.shape[0]):
                        audio.append(np.ascontiguousarray(pcm[b]))
                        rates.append(int(sr[b, 0]))
                    rows.append(pcm.shape[0])
                else:
                    raise ValueError("each request needs WAV (bytes) or PCM (float32) + SAMPLE_RATE")
            results = self.rec.transcribe(audio, sample_rate=rates, keys=[str(i) for i in range(len(audio))])
        finally:
            for p in spooled:
                try:
                    os.unlink(p)
                except OSError:
                    pass
        out, at = [], 0
        for n in rows:
            out.append(results_to_outputs(results[at : at + n]))
            at += n
        return out


class _Sequence:
    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.lock = threading.Lock()  # one request of a sequence at a time
        self.text = ""                # final utterances joined
        self.tokens: List[int] = []
        self.stamps: List[tuple] = []
        self.partial = ""
        self.last_used = time.monotonic()


class StreamingInstance:
    """Triton's streaming model: rows of (SEQUENCE_ID, START, END, PCM, SAMPLE_RATE) -> the text so far.
    Every instance shares one StreamingRecognizer and the table of open sequences."""

    def __init__(self, recognizer: StreamingRecognizer, sequences: Dict[int, _Sequence], lock: threading.Lock,
                 idle_seconds: float = 60.0, sync_timeout: float = 60.0) -> None:
        self.rec = recognizer
        self.sequences = sequences
        self.lock = lock  # guards the table
        self.idle_seconds = idle_seconds
        self.sync_timeout = sync_timeout

    def _drop_idle(self) -> None:
        now = time.monotonic()
        with self.lock:
            stale = [k for k, q in self.sequences.items() if now - q.last_used > self.idle_seconds]
            dropped = [self.sequences.pop(k) for k in stale]
        for q in dropped:
            _LOG.info("dropping an idle sequence")
            q.stream.close()

    def _take(self, q: _Sequence) -> None:
        for r in q.stream.poll():
            if r.is_final:
                q.text = append_text(q.text, r.text)
                q.tokens += r.tokens
                q.stamps += r.timestamps
                q.partial = ""
            else:
                q.partial = r.text

    def _row(self, seq_id: int, start: bool, end: bool, pcm: Optional[np.ndarray], rate: Optional[int]) -> dict:
        if seq_id == 0:
            raise ValueError("SEQUENCE_ID must not be 0")
        with self.lock:
            q = self.sequences.get(seq_id)
            if start:
                old, q = q, _Sequence(self.rec.stream(continuous_decoding=True))
                self.sequences[seq_id] = q
                if old is not None:
                    old.stream.close()
            elif q is None:
                raise ValueError(f"unknown sequence {seq_id}: send START first (or it was idle for more than "
                                 f"{self.idle_seconds:g} s)")
        with q.lock:
            q.last_used = time.monotonic()
            try:
                if pcm is not None and pcm.size:
                    if rate is None:
                        raise ValueError("PCM needs SAMPLE_RATE")
                    q.stream.accept_waveform(pcm, rate)
                if end:
                    q.stream.finish()
                if not q.stream.sync(self.sync_timeout):
                    raise Error(f"no result within {self.sync_timeout:g} s")
                self._take(q)
                if q.stream.done and q.stream.error:
                    raise Error(q.stream.error)
            except Exception:
                with self.lock:
                    if self.sequences.get(seq_id) is q:
                        del self.sequences[seq_id]
                q.stream.close()
                raise
            if end:
                with self.lock:
                    if self.sequences.get(seq_id) is q:
                        del self.sequences[seq_id]
                q.stream.close()
            return {"text": append_text(q.text, q.partial), "partial": q.partial, "final": end,
                    "tokens": list(q.tokens), "stamps": list(q.stamps), "error": ""}

    def __call__(self, requests: List) -> List[Dict[str, np.ndarray]]:
        self._drop_idle()
        out = []
        for req in requests:
            data = req.data
            if "SEQUENCE_ID" not in data:
                raise ValueError("each request needs SEQUENCE_ID (uint64)")
            ids = np.asarray(data["SEQUENCE_ID"]).reshape(-1)
            n = ids.shape[0]

            def flag(name):
                return np.asarray(data[name]).reshape(n, -1)[:, 0].astype(bool) if name in data else np.zeros(n, bool)

            starts, ends = flag("START"), flag("END")
            pcm = np.asarray(data["PCM"], dtype=np.float32).reshape(n, -1) if "PCM" in data else None
            rates = np.asarray(data["SAMPLE_RATE"]).reshape(n, -1)[:, 0] if "SAMPLE_RATE" in data else None
            rows = []
            for b in range(n):
                try:
                    rows.append(self._row(int(ids[b]), bool(starts[b]), bool(ends[b]),
                                          None if pcm is None else np.ascontiguousarray(pcm[b]),
                                          None if rates is None else int(rates[b])))
                except (Error, ValueError, TypeError) as e:
                    rows.append({"text": "", "partial": "", "final": bool(ends[b]), "tokens": [], "stamps": [],
                                 "error": str(e)})
            longest = max([1] + [len(r["tokens"]) for r in rows])
            tokens = np.full((n, longest), -1, dtype=np.int32)
            stamps = np.full((n, longest, 2), -1, dtype=np.int32)
            for i, r in enumerate(rows):
                tokens[i, : len(r["tokens"])] = r["tokens"]
                if r["stamps"]:
                    stamps[i, : len(r["stamps"])] = r["stamps"]
            out.append({
                "TEXT": np.array([[r["text"].encode("utf-8")] for r in rows], dtype=np.object_),
                "PARTIAL": np.array([[r["partial"].encode("utf-8")] for r in rows], dtype=np.object_),
                "IS_FINAL": np.array([[r["final"]] for r in rows], dtype=np.bool_),
                "TOKENS": tokens,
                "TIMESTAMPS": stamps,
                "ERROR": np.array([[r["error"].encode("utf-8")] for r in rows], dtype=np.object_),
            })
        return out


def serve(model_dir: str, instances: int = 1, http_port: int = 8000, grpc_port: int = 8001,
          metrics_port: int = 8002, max_batch_size: int = 64, max_queue_delay_us: int = 5000,
          threads: Optional[int] = None, log_verbose: int = 0, streaming: str = "auto", chunk_size: int = 16,
          left_chunks: int = -1, max_streams: Optional[int] = None, stream_instances: int = 4,
          stream_idle_seconds: float = 60.0, exit_timeout_secs: Optional[int] = None, **recognizer_args) -> None:
    """Serve `model_dir` until interrupted (SIGINT / SIGTERM): the offline model, and the streaming
    model (streaming "auto": when the model was trained for streaming; "on": required; "off")."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    if instances < 1:
        raise ValueError(f"instances: expected >= 1, got {instances}")
    if threads is None:  # the cores shared among the instances
        threads = max(1, (os.cpu_count() or 1) // instances)
    spool_root = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="wenet_rt_triton_", dir=spool_root) as spool:
        funcs = [RecognizerInstance(Recognizer(model_dir, threads=threads, **recognizer_args), spool)
                 for _ in range(instances)]
        _LOG.info("%s", funcs[0].rec.describe())
        srec = None
        if streaming != "off":
            try:
                srec = StreamingRecognizer(model_dir, chunk_size=chunk_size, num_left_chunks=left_chunks,
                                           max_streams=max_streams, **recognizer_args)
            except Error as e:
                if streaming == "on" or "not trained for streaming" not in str(e):
                    raise
                _LOG.info("no streaming model: %s", e)
        config = TritonConfig(http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                              log_verbose=log_verbose, exit_timeout_secs=exit_timeout_secs)

        def bind_models(triton) -> None:
            triton.bind(
                model_name=MODEL_NAME,
                infer_func=funcs,
                inputs=[
                    Tensor(name="WAV", dtype=bytes, shape=(1,), optional=True),
                    Tensor(name="PCM", dtype=np.float32, shape=(-1,), optional=True),
                    Tensor(name="SAMPLE_RATE", dtype=np.int32, shape=(1,), optional=True),
                ],
                outputs=[
                    Tensor(name="TEXT", dtype=bytes, shape=(1,)),
                    Tensor(name="TOKENS", dtype=np.int32, shape=(-1,)),
                    Tensor(name="TIMESTAMPS", dtype=np.int32, shape=(-1, 2)),
                    Tensor(name="SCORE", dtype=np.float32, shape=(1,)),
                    Tensor(name="ERROR", dtype=bytes, shape=(1,)),
                ],
                config=ModelConfig(max_batch_size=max_batch_size,
                                   batcher=DynamicBatcher(max_queue_delay_microseconds=max_queue_delay_us)),
                strict=True,
            )
            if srec is not None:
                sequences: Dict[int, _Sequence] = {}
                table_lock = threading.Lock()
                triton.bind(
                    model_name=STREAMING_MODEL_NAME,
                    infer_func=[StreamingInstance(srec, sequences, table_lock, stream_idle_seconds)
                                for _ in range(stream_instances)],
                    inputs=[
                        Tensor(name="SEQUENCE_ID", dtype=np.uint64, shape=(1,)),
                        Tensor(name="START", dtype=np.bool_, shape=(1,), optional=True),
                        Tensor(name="END", dtype=np.bool_, shape=(1,), optional=True),
                        Tensor(name="PCM", dtype=np.float32, shape=(-1,), optional=True),
                        Tensor(name="SAMPLE_RATE", dtype=np.int32, shape=(1,), optional=True),
                    ],
                    outputs=[
                        Tensor(name="TEXT", dtype=bytes, shape=(1,)),
                        Tensor(name="PARTIAL", dtype=bytes, shape=(1,)),
                        Tensor(name="IS_FINAL", dtype=np.bool_, shape=(1,)),
                        Tensor(name="TOKENS", dtype=np.int32, shape=(-1,)),
                        Tensor(name="TIMESTAMPS", dtype=np.int32, shape=(-1, 2)),
                        Tensor(name="ERROR", dtype=bytes, shape=(1,)),
                    ],
                    config=ModelConfig(max_batch_size=max_batch_size, batcher=DynamicBatcher(max_queue_delay_microseconds=0)),
                    strict=True,
                )
                print(f"wenet_rt.triton: serving model '{STREAMING_MODEL_NAME}' ({stream_instances} instance(s), "
                      f"chunk {chunk_size}, left chunks {left_chunks})", flush=True)
            print(f"wenet_rt.triton: serving model '{MODEL_NAME}' ({instances} instance(s)) on HTTP :{http_port}, "
                  f"gRPC :{grpc_port}, metrics :{metrics_port}", flush=True)

        # PyTriton 0.7 races when a model has several instances: Triton initializes them at once and
        # an instance other than the first may ask the first one's handshake server for its config
        # before that server listens ('Connection refused', the model fails to load; seen on a busy
        # machine). Triton is then started again; the recognizers are kept.
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                with Triton(config=config) as triton:
                    bind_models(triton)
                    triton.serve()
                return
            except Exception as e:  # a tritonclient InferenceServerException from bind()
                if "get_config_from_handshake_server" not in str(e) or attempt == _START_ATTEMPTS:
                    raise
                _LOG.warning("a model instance asked for its config before the handshake server listened "
                             "(a PyTriton race); starting Triton again (attempt %d of %d)", attempt + 1,
                             _START_ATTEMPTS)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wenet_rt.triton", description=__doc__.split("\n")[0])
    p.add_argument("model_dir")
    p.add_argument("--instances", type=int, default=1, help="model instances, each with its own Recognizer")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--max-batch-size", type=int, default=64, help="rows Triton's dynamic batcher gathers per call")
    p.add_argument("--max-queue-delay-us", type=int, default=5000, help="how long a request may wait for others")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--precision", choices=["fp16", "fp32", "int8"], default="fp16",
                   help="fp16 | fp32 (cuda) | int8 (cpu: dynamic INT8 linear layers)")
    p.add_argument("--mode", choices=MODES, default="attention_rescoring")
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="CPU threads per instance (default: cores / instances)")
    p.add_argument("--log-verbose", type=int, default=0)
    p.add_argument("--streaming", choices=["auto", "on", "off"], default="auto",
                   help=f"serve '{STREAMING_MODEL_NAME}' too (auto: when the model was trained for streaming)")
    p.add_argument("--chunk-size", type=int, default=16, help="streaming: encoder frames per chunk (16 = 640 ms)")
    p.add_argument("--left-chunks", type=int, default=-1, help="streaming: chunks of attention history (-1 = all)")
    p.add_argument("--max-streams", type=int, default=None, help="streaming: sequences open at once (default by device)")
    p.add_argument("--stream-instances", type=int, default=4,
                   help="streaming: model instances (requests answered at once; they share one engine)")
    p.add_argument("--stream-idle-seconds", type=float, default=60.0,
                   help="streaming: sequences without a request for this long are dropped")
    p.add_argument("--exit-timeout-secs", type=int, default=None,
                   help="on SIGINT, how long tritonserver waits for in-flight requests (Triton's default: 30)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    serve(a.model_dir, instances=a.instances, http_port=a.http_port, grpc_port=a.grpc_port,
          metrics_port=a.metrics_port, max_batch_size=a.max_batch_size, max_queue_delay_us=a.max_queue_delay_us,
          threads=a.threads, log_verbose=a.log_verbose, streaming=a.streaming, chunk_size=a.chunk_size,
          left_chunks=a.left_chunks, max_streams=a.max_streams, stream_instances=a.stream_instances,
          stream_idle_seconds=a.stream_idle_seconds, exit_timeout_secs=a.exit_timeout_secs, device=a.device, precision=a.precision, mode=a.mode,
          beam=a.beam)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
