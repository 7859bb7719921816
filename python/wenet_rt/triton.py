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
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import MODES, Recognizer, Result

MODEL_NAME = "wenet_rt"
_LOG = logging.getLogger("wenet_rt.triton")


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


def serve(model_dir: str, instances: int = 1, http_port: int = 8000, grpc_port: int = 8001,
          metrics_port: int = 8002, max_batch_size: int = 64, max_queue_delay_us: int = 5000,
          threads: Optional[int] = None, log_verbose: int = 0, **recognizer_args) -> None:
    """Serve `model_dir` until interrupted (SIGINT / SIGTERM)."""
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
        config = TritonConfig(http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                              log_verbose=log_verbose)
        with Triton(config=config) as triton:
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
            print(f"wenet_rt.triton: serving model '{MODEL_NAME}' ({instances} instance(s)) on HTTP :{http_port}, "
                  f"gRPC :{grpc_port}, metrics :{metrics_port}", flush=True)
            triton.serve()


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
    p.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    p.add_argument("--mode", choices=MODES, default="attention_rescoring")
    p.add_argument("--beam", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="CPU threads per instance (default: cores / instances)")
    p.add_argument("--log-verbose", type=int, default=0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    serve(a.model_dir, instances=a.instances, http_port=a.http_port, grpc_port=a.grpc_port,
          metrics_port=a.metrics_port, max_batch_size=a.max_batch_size, max_queue_delay_us=a.max_queue_delay_us,
          threads=a.threads, log_verbose=a.log_verbose, device=a.device, precision=a.precision, mode=a.mode,
          beam=a.beam)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
