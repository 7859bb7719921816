"""wenet-rt: fast inference for WeNet speech recognition models.

    import wenet_rt
    rec = wenet_rt.Recognizer("models/demo", device="cpu")
    for r in rec.transcribe(["a.wav", "b.flac"]):
        print(r.key, r.text)
    r = rec.transcribe(samples, sample_rate=16000)   # one numpy array (float32 or int16)

The engine is the C++ library the `wenet-rt` command line uses (wenet_rt._core); it batches
everything given to one transcribe() call by length, as the command line does.

Errors: bad arguments raise ValueError (or TypeError for a wrong type); what the engine refuses
(a bad model directory, an unusable device) raises wenet_rt.Error, a RuntimeError carrying the
engine's message. With one input, its failure (an unreadable file, audio too short) raises
wenet_rt.Error; with a list, each failure is reported in its Result.error and the rest go on.

Threads: a Recognizer may be shared by threads; its calls run one at a time (each already uses
`threads` CPU threads, all cores by default), with the GIL released. For calls in parallel,
make one Recognizer per thread, each with fewer threads.

Streaming (U2 / U2++ models; wenet_rt.streaming, over include/wenet_rt/streaming.h):

    srec = wenet_rt.StreamingRecognizer("models/demo", device="cpu", chunk_size=16)
    s = srec.stream(continuous_decoding=True)
    s.accept_waveform(samples, 16000)      # as audio arrives; s.partial: the text so far
    s.finish()
    for r in s:                            # partial and final results until done
        print(r.is_final, r.text, r.timestamps)
"""
from __future__ import annotations

import ctypes
import os
import sys
from typing import List, Optional, Sequence, Union

import numpy as np

if sys.platform.startswith("linux"):
    # The C++ runtime into the global scope before the module: a toolchain that links libstdc++
    # statically into _core (seen on the GPU machine) would otherwise leave two copies in the
    # process, and the module's copy would look up locale facets that the shared one registered
    # (a crash at the first number parsed). Where the module links the shared one, a no-op.
    try:
        ctypes.CDLL("libstdc++.so.6", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        pass

from . import _core  # noqa: E402
from ._core import Config, Error, Result, WordPiece, read_audio  # noqa: E402
from .streaming import (MODES, PRECISIONS, EndpointConfig, Sentence, Stream, StreamingConfig,  # noqa: E402
                        StreamingRecognizer, StreamingStats, StreamResult, check_common_args)

__all__ = ["Recognizer", "Config", "Result", "WordPiece", "Error", "HAS_CUDA", "MODES", "PRECISIONS", "__version__",
           "StreamingRecognizer", "Stream", "StreamResult", "Sentence", "StreamingConfig", "EndpointConfig",
           "StreamingStats", "read_audio"]
__version__ = "0.1.0"

HAS_CUDA: bool = _core.HAS_CUDA

PathLike = Union[str, "os.PathLike[str]"]
Audio = Union[PathLike, np.ndarray]


def _as_float32(a: object, what: str) -> np.ndarray:
    """A 1-D float32 C-contiguous view of `a` (int16 is scaled by 1/32768, as WAV readers do)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{what}: expected a path or a numpy array, got {type(a).__name__}")
    if a.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array of mono samples, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{what}: the array is empty")
    if a.dtype == np.int16:
        return np.multiply(a, np.float32(1.0 / 32768.0), dtype=np.float32)
    if a.dtype != np.float32:
        raise ValueError(
            f"{what}: expected float32 samples in [-1, 1) or int16 PCM, got {a.dtype} "
            "(convert with .astype(np.float32), scaled to [-1, 1))")
    return np.ascontiguousarray(a)  # a view unless strided


def _check_rate(rate: object, what: str) -> int:
    if rate is None:
        raise ValueError(f"{what}: sample_rate is required with array input")
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)):
        raise TypeError(f"{what}: sample_rate must be an int, got {type(rate).__name__}")
    if not _core.MIN_SAMPLE_RATE <= rate <= _core.MAX_SAMPLE_RATE:
        raise ValueError(f"{what}: expected a sample_rate of {_core.MIN_SAMPLE_RATE}..{_core.MAX_SAMPLE_RATE} Hz, "
                         f"got {rate}")
    return int(rate)


class Recognizer:
    """Speech to text with a WeNet model directory (train.yaml, final.pt, global_cmvn, units.txt).

    Args mirror wenet_rt::RecognizerConfig (include/wenet_rt/recognizer.h) and the command line:
        device: "cpu" or "cuda".
        precision: "fp16" or "fp32" on cuda; "fp32" (fp16 means fp32 there) or "int8" (dynamic INT8
            linear layers) on cpu.
        mode: "attention_rescoring" (default), "ctc_prefix_beam" or "ctc_greedy".
        beam: CTC prefix beam and the N-best that rescoring scores (10).
        ctc_weight, rescoring_weight, reverse_weight: rescoring weights (0.5, 1.0, and
            reverse_weight None = train.yaml's model_conf.reverse_weight).
        batch_size: most utterances per batch (64); batch_frames: most padded fbank frames per
            batch (None = by device: cuda 48000, cpu 3000; 100 frames = 1 s).
        max_segment_seconds: longer recordings are split at pauses and their results joined (30).
        threads: CPU threads (None = all cores).
        gpu_frontend: fbank on the GPU with device "cuda" (True).
    """

    def __init__(self, model_dir: PathLike, device: str = "cpu", precision: str = "fp16",
                 mode: str = "attention_rescoring", beam: int = 10, ctc_weight: float = 0.5,
                 rescoring_weight: float = 1.0, reverse_weight: Optional[float] = None,
                 batch_size: int = 64, batch_frames: Optional[int] = None,
                 max_segment_seconds: float = 30.0, threads: Optional[int] = None,
                 gpu_frontend: bool = True) -> None:
        model_dir = check_common_args(model_dir, device, precision, mode)
        cfg = Config()
        cfg.device, cfg.precision, cfg.mode = device, precision, mode
        cfg.beam, cfg.ctc_weight, cfg.rescoring_weight = beam, ctc_weight, rescoring_weight
        cfg.reverse_weight = -1.0 if reverse_weight is None else reverse_weight
        cfg.batch_size = batch_size
        cfg.batch_frames = 0 if batch_frames is None else batch_frames
        cfg.max_segment_seconds = max_segment_seconds
        cfg.threads = 0 if threads is None else threads
        cfg.gpu_frontend = gpu_frontend
        try:
            cfg.validate()
        except Error as e:
            raise ValueError(str(e)) from None
        self.model_dir = model_dir
        self.config = cfg
        self._rec = _core.Recognizer(model_dir, cfg)

    @property
    def sample_rate(self) -> int:
        """The model's sample rate; other rates are resampled."""
        return self._rec.sample_rate

    def describe(self) -> str:
        """Model and configuration summary (as `wenet-rt info` prints)."""
        return self._rec.describe()

    def __repr__(self) -> str:
        return f"Recognizer({self.model_dir!r}, {self.config.describe()})"

    def transcribe(self, audio: Union[Audio, Sequence[Audio]],
                   sample_rate: Union[int, Sequence[int], None] = None,
                   keys: Optional[Sequence[str]] = None) -> Union[Result, List[Result]]:
        """Transcribe audio files or numpy arrays.

        audio: a path, a 1-D numpy array (float32 in [-1, 1), or int16 PCM), or a list of them
            (mixed is fine). Arrays are used in place (no copy) when float32, contiguous and at
            the model's sample rate.
        sample_rate: with arrays: one rate for all, or one per array (paths ignore it).
        keys: one per input (default: a file's stem, an array's index).
        Returns one Result for one input (its failure raises wenet_rt.Error), a list of Results,
        in order, for a list (failures in Result.error).
        """
        single = isinstance(audio, (str, os.PathLike, np.ndarray))
        items = [audio] if single else list(audio)
        if not single and not isinstance(audio, (list, tuple)):
            raise TypeError(f"audio: expected a path, a numpy array or a list of them, got {type(audio).__name__}")
        if keys is not None and len(keys) != len(items):
            raise ValueError(f"keys: expected {len(items)} keys (one per input), got {len(keys)}")
        rates: Sequence[object]
        if not isinstance(sample_rate, (list, tuple)):
            rates = [sample_rate] * len(items)
        else:
            rates = list(sample_rate)
            if len(rates) != len(items):
                raise ValueError(f"sample_rate: expected one rate or {len(items)} (one per input), got {len(rates)}")

        files, file_at, arrays, array_at, akeys, arates = [], [], [], [], [], []
        for i, a in enumerate(items):
            what = "audio" if single else f"audio[{i}]"
            if isinstance(a, (str, os.PathLike)):
                path = os.fspath(a)
                key = keys[i] if keys is not None else os.path.splitext(os.path.basename(path))[0]
                files.append((key, path))
                file_at.append(i)
            else:
                arrays.append(_as_float32(a, what))
                arates.append(_check_rate(rates[i], what))
                akeys.append(keys[i] if keys is not None else str(i))
                array_at.append(i)

        results: List[Optional[Result]] = [None] * len(items)
        if files:
            for i, r in zip(file_at, self._rec.recognize_files(files)):
                results[i] = r
        if arrays:
            for i, r in zip(array_at, self._rec.recognize_samples(akeys, arrays, arates)):
                results[i] = r
        if single:
            r = results[0]
            if r.error:
                raise Error(r.error)
            return r
        return results  # type: ignore[return-value]
