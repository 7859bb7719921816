"""Streaming recognition: wenet_rt.StreamingRecognizer and its streams (include/wenet_rt/streaming.h).

    rec = wenet_rt.StreamingRecognizer("models/demo", device="cpu", chunk_size=16)
    s = rec.stream(continuous_decoding=True)          # one per client / microphone
    for piece in pieces:                              # as audio arrives, any sizes
        s.accept_waveform(piece, 16000)               # float32 in [-1, 1) or int16, 1-D
        print("partial:", s.partial)
    s.finish()                                        # no more audio
    for r in s:                                       # every result not yet taken, until done
        if r.is_final:
            print(r.text, r.timestamps)

One StreamingRecognizer per process (per device): its engine batches the chunks of all streams
into one encoder call. Streams may be fed and read from any threads (one thread per stream or one
loop for all); the GIL is released while the engine computes a piece's features and while
waiting for results.
"""
from __future__ import annotations

import os
import time
from typing import Iterator, List, Optional

import numpy as np

from . import _core
from ._core import EndpointConfig, Error, Sentence, StreamingConfig, StreamingStats, StreamResult

__all__ = ["StreamingRecognizer", "Stream", "StreamResult", "Sentence", "StreamingConfig", "EndpointConfig",
           "StreamingStats"]

MODES = ("ctc_greedy", "ctc_prefix_beam", "attention_rescoring")
PRECISIONS = ("fp16", "fp32", "int8")


def check_common_args(model_dir, device: str, precision: str, mode: str) -> str:
    """The checks both recognizers make before the engine's own (ValueError naming the argument);
    returns model_dir as a str."""
    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise ValueError(f"model directory '{model_dir}' does not exist (or is not a directory)")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: expected 'cpu' or 'cuda', got {device!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    return model_dir


_WAIT_SLICE_S = 0.1  # waits are cut into slices so that Ctrl-C (KeyboardInterrupt) gets through


def append_text(text: str, more: str) -> str:
    """Texts of consecutive utterances joined as the command line joins them (the same C++ code): a
    space between them unless the script writes none (CJK)."""
    return _core.append_utterance_text(text, more)


def _samples(a: object) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"accept_waveform: expected a numpy array, got {type(a).__name__}")
    if a.ndim != 1:
        raise ValueError(f"accept_waveform: expected a 1-D array of mono samples, got shape {a.shape}")
    if a.dtype != np.float32 and a.dtype != np.int16:
        raise ValueError(f"accept_waveform: expected float32 samples in [-1, 1) or int16 PCM, got {a.dtype} "
                         "(convert with .astype(np.float32), scaled to [-1, 1))")
    return np.ascontiguousarray(a)  # a view unless strided


def _rate(rate: object) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)):
        raise TypeError(f"accept_waveform: sample_rate must be an int, got {type(rate).__name__}")
    return int(rate)


class Stream:
    """One audio stream: feed it with accept_waveform(), read partial and final results.

    Results come in order: partial results (is_final False) after each chunk of audio decoded
    (chunk_size encoder frames: 640 ms with chunk 16), then a final result (attention
    rescoring, timestamps) at an endpoint or at the end of input. With continuous_decoding a new
    utterance follows each endpoint (StreamResult.utterance counts them); without it, decoding
    stops at the first endpoint and later audio is ignored. The stream is `done` once its last
    result was produced (StreamResult.last).

    Iterating (`for r in stream`) blocks until each result and ends when the stream is done; call
    finish() first, or feed it from another thread. A stream that failed (the device broke, the
    recognizer was closed) raises wenet_rt.Error from results() / iteration once its results were
    taken. close() (or leaving a `with` block) abandons an unfinished stream and frees its slot.
    """

    def __init__(self, recognizer: "StreamingRecognizer", core: "_core.Stream", nbest: int,
                 continuous_decoding: bool) -> None:
        self._rec = recognizer  # keeps the engine alive while the stream is used
        self._s = core
        self.nbest = nbest
        self.continuous_decoding = continuous_decoding

    def accept_waveform(self, samples: np.ndarray, sample_rate: int) -> None:
        """Append audio: a 1-D numpy array of float32 samples in [-1, 1) or int16 PCM, at the model's
        sample rate (StreamingRecognizer.sample_rate), any length. Contiguous arrays are read in place.

        Raises wenet_rt.Error for another sample rate or after finish(); ValueError / TypeError for
        another dtype, rank or type.
        """
        a = _samples(samples)
        rate = _rate(sample_rate)
        if a.dtype == np.int16:
            self._s.accept_waveform_i16(a, rate)
        else:
            self._s.accept_waveform_f32(a, rate)

    def finish(self) -> None:
        """No more audio (input_finished): the rest is decoded and the last final result follows."""
        self._s.input_finished()

    def poll(self) -> List[StreamResult]:
        """The results not yet taken, in order (partials and finals); never blocks."""
        return self._s.poll()

    def results(self, timeout: Optional[float] = None) -> List[StreamResult]:
        """The results not yet taken, waiting up to `timeout` seconds (None: without limit) for at
        least one or for the stream to be done. [] on timeout, or when done and all were taken.

        Raises wenet_rt.Error when the stream failed and every result was taken.
        """
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            left = _WAIT_SLICE_S if deadline is None else min(_WAIT_SLICE_S, deadline - time.monotonic())
            out = self._s.wait(max(0.0, left))
            if out:
                return out
            if self._s.done:
                out = self._s.poll()  # delivered between the wait and done
                if not out and self._s.error:
                    raise Error(self._s.error)
                return out
            if deadline is not None and time.monotonic() >= deadline:
                return []

    def sync(self, timeout: Optional[float] = None) -> bool:
        """Wait until every complete chunk of the audio accepted so far is decoded and its result
        delivered (after finish(): until done). Returns False on timeout. Results stay to be taken:
        for request / response use (send a piece, sync, answer with `partial` or poll())."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            left = _WAIT_SLICE_S if deadline is None else min(_WAIT_SLICE_S, deadline - time.monotonic())
            if self._s.sync(max(0.0, left)):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def __iter__(self) -> Iterator[StreamResult]:
        """Every result until the stream is done (blocking)."""
        while True:
            batch = self.results()
            if not batch:
                return
            yield from batch
            if batch[-1].last:
                return

    def finals(self, timeout: Optional[float] = None) -> List[StreamResult]:
        """finish(), then the final results of the rest of the stream (partials are dropped)."""
        self.finish()
        deadline = None if timeout is None else time.monotonic() + timeout
        out: List[StreamResult] = []
        while not self.done:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Error(f"no final result within {timeout} s")
            out += [r for r in self.results(left) if r.is_final]
        out += [r for r in self.poll() if r.is_final]
        if self.error:
            raise Error(self.error)
        return out

    @property
    def partial(self) -> str:
        """The current best text of the utterance in progress ('' after a final result)."""
        return self._s.partial

    @property
    def done(self) -> bool:
        """Input finished (or stopped at an endpoint without continuous decoding) and the last
        result produced."""
        return self._s.done

    @property
    def error(self) -> str:
        """Non-empty if the engine could not go on with this stream (done is then True)."""
        return self._s.error

    def close(self) -> None:
        """Drop the stream: an unfinished one is abandoned (its slot freed, no more results)."""
        if not self._s.closed:
            self._s.close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._s.closed else ("done" if self.done else "open")
        return f"Stream({state}, nbest={self.nbest}, continuous_decoding={self.continuous_decoding})"


class StreamingRecognizer:
    """Streaming speech to text with a U2 / U2++ WeNet model (trained with use_dynamic_chunk or
    static_chunk_size); one per process, shared by all its streams.

    Args mirror wenet_rt::StreamingConfig (include/wenet_rt/streaming.h) and the command line's
    `transcribe --streaming`:
        device, precision, mode, beam, ctc_weight, rescoring_weight, reverse_weight: as Recognizer
            (mode "attention_rescoring" rescores each utterance at its end; "ctc_greedy" is the
            prefix search with beam 1).
        chunk_size: encoder frames per chunk (16 = 640 ms with x4 subsampling; WeNet's
            decoding_chunk_size); num_left_chunks: chunks of attention history (-1 = all).
        endpoint: WeNet's endpoint rules on (True); an utterance ends after
            endpoint_silence_ms of silence (5000) even if nothing was decoded,
            endpoint_silence_after_speech_ms (1000) once something was, or at
            endpoint_max_utterance_ms (20000); silence = frames whose blank probability exceeds
            endpoint_blank_threshold (0.8). For other rules set `config.endpoint` fields.
        max_utterance_seconds: longest utterance kept (30).
        max_streams: streams open at once (None = by device); max_batch: chunks per encoder call
            (None = max_streams); threads: CPU threads (None = all cores).

    Raises ValueError for a bad option or a missing directory, wenet_rt.Error for what the engine
    refuses (a model not trained for streaming, a bad model directory, an unusable device).
    """

    def __init__(self, model_dir: "str | os.PathLike[str]", device: str = "cpu", precision: str = "fp16",
                 mode: str = "attention_rescoring", beam: int = 10, ctc_weight: float = 0.5,
                 rescoring_weight: float = 1.0, reverse_weight: Optional[float] = None, chunk_size: int = 16,
                 num_left_chunks: int = -1, endpoint: bool = True, endpoint_blank_threshold: float = 0.8,
                 endpoint_silence_ms: int = 5000, endpoint_silence_after_speech_ms: int = 1000,
                 endpoint_max_utterance_ms: int = 20000, max_utterance_seconds: float = 30.0,
                 max_streams: Optional[int] = None, max_batch: Optional[int] = None,
                 threads: Optional[int] = None) -> None:
        model_dir = check_common_args(model_dir, device, precision, mode)
        cfg = StreamingConfig()
        cfg.device, cfg.precision, cfg.mode = device, precision, mode
        cfg.beam, cfg.ctc_weight, cfg.rescoring_weight = beam, ctc_weight, rescoring_weight
        cfg.reverse_weight = -1.0 if reverse_weight is None else reverse_weight
        cfg.chunk_size, cfg.num_left_chunks = chunk_size, num_left_chunks
        ep = cfg.endpoint
        ep.enabled, ep.blank_threshold = bool(endpoint), endpoint_blank_threshold
        r1, r2, r3 = ep.rule1, ep.rule2, ep.rule3
        r1.min_trailing_silence_ms = endpoint_silence_ms
        r2.min_trailing_silence_ms = endpoint_silence_after_speech_ms
        r3.min_utterance_length_ms = endpoint_max_utterance_ms
        ep.rule1, ep.rule2, ep.rule3 = r1, r2, r3
        cfg.endpoint = ep
        cfg.max_utterance_seconds = max_utterance_seconds
        cfg.max_streams = 0 if max_streams is None else max_streams
        cfg.max_batch = 0 if max_batch is None else max_batch
        cfg.threads = 0 if threads is None else threads
        try:
            cfg.validate()
        except Error as e:
            raise ValueError(str(e)) from None
        self.model_dir = model_dir
        self.config = cfg
        self._rec = _core.StreamingRecognizer(model_dir, cfg)

    @property
    def engine_config(self) -> StreamingConfig:
        """The configuration in use: as given, with the device's defaults filled in (max_streams...)."""
        return self._rec.config
    def stream(self, nbest: int = 1, continuous_decoding: bool = False) -> Stream:
        """A new stream. nbest: hypotheses in each result (1..beam); continuous_decoding: go on with a
        new utterance after each endpoint. Raises wenet_rt.Error when max_streams are open."""
        if nbest < 1 or nbest > self.config.beam:
            raise ValueError(f"nbest: expected 1..{self.config.beam} (the beam), got {nbest}")
        return Stream(self, self._rec.create_stream(nbest, bool(continuous_decoding)), nbest,
                      bool(continuous_decoding))

    @property
    def sample_rate(self) -> int:
        """The model's sample rate: streams accept audio at this rate only."""
        return self._rec.sample_rate

    def describe(self) -> str:
        """Model and configuration summary."""
        return self._rec.describe()

    def stats(self) -> StreamingStats:
        """Counters: active streams, chunks, encoder calls, finals, audio seconds..."""
        return self._rec.stats()

    def close(self) -> None:
        """Stop the engine now: open streams end with an error. (Otherwise when garbage-collected.)"""
        self._rec.close()

    def __enter__(self) -> "StreamingRecognizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StreamingRecognizer({self.model_dir!r}, {self.config.describe()})"
