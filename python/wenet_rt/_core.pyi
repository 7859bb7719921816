"""wenet-rt engine bindings (nanobind); use the wenet_rt package."""
from typing import List, Sequence, Tuple

import numpy as np
import numpy.typing as npt

MIN_SAMPLE_RATE: int
MAX_SAMPLE_RATE: int
HAS_CUDA: bool

class Error(RuntimeError):
    """An engine failure (bad model directory, unusable device, unreadable audio), with its message."""

class Config:
    """wenet_rt::RecognizerConfig (include/wenet_rt/recognizer.h)."""
    device: str
    precision: str
    mode: str
    beam: int
    ctc_weight: float
    rescoring_weight: float
    reverse_weight: float
    batch_size: int
    batch_frames: int
    max_segment_seconds: float
    threads: int
    gpu_frontend: bool
    def __init__(self) -> None: ...
    def validate(self) -> None:
        """Raises wenet_rt.Error naming a bad field."""
    def describe(self) -> str: ...

class WordPiece:
    """A token (or word piece) and where the CTC places it, in ms from the start of the recording."""
    @property
    def word(self) -> str: ...
    @property
    def start_ms(self) -> int: ...
    @property
    def end_ms(self) -> int: ...

class Result:
    """One recording's transcript."""
    @property
    def key(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def tokens(self) -> List[int]:
        """Token ids (units.txt)."""
    @property
    def word_pieces(self) -> List[WordPiece]:
        """One per token, from the CTC peaks."""
    @property
    def timestamps(self) -> List[Tuple[int, int]]:
        """(start_ms, end_ms) per token."""
    @property
    def score(self) -> float:
        """The winning hypothesis' final score."""
    @property
    def duration(self) -> float:
        """Audio duration in seconds."""
    @property
    def segments(self) -> int:
        """> 1 when a long recording was split at pauses."""
    @property
    def error(self) -> str:
        """Non-empty if this recording failed (text is then empty)."""
    @property
    def ok(self) -> bool: ...
    def to_dict(self) -> dict:
        """The command line's --format json object."""

class Recognizer:
    def __init__(self, model_dir: str, config: Config) -> None: ...
    def recognize_files(self, files: Sequence[Tuple[str, str]]) -> List[Result]: ...
    def recognize_samples(self, keys: Sequence[str], arrays: Sequence[npt.NDArray[np.float32]],
                          sample_rates: Sequence[int]) -> List[Result]: ...
    @property
    def sample_rate(self) -> int: ...
    def describe(self) -> str: ...

def read_audio(path: str, sample_rate: int = 0) -> Tuple[npt.NDArray[np.float32], int]:
    """An audio file (WAV, FLAC, ...) as (float32 samples in [-1, 1) of channel 0, rate), resampled to
    sample_rate unless 0, as the command line reads it. Raises Error naming the file."""

def append_utterance_text(text: str, more: str) -> str:
    """text + the next utterance's text of a recording (continuous decoding), joined as the command
    line joins them: a space between them unless the script writes none (CJK)."""

# --- streaming (include/wenet_rt/streaming.h) --------------------------------------------------------

class EndpointRule:
    """One of WeNet's endpoint rules: the utterance ends when it holds (0 = not checked)."""
    must_decoded_something: bool
    min_trailing_silence_ms: int
    min_utterance_length_ms: int
    def __init__(self) -> None: ...

class EndpointConfig:
    """WeNet's CTC endpoint rules."""
    enabled: bool
    blank_threshold: float
    rule1: EndpointRule
    """5 s of silence, even if nothing was decoded."""
    rule2: EndpointRule
    """1 s of silence after something was decoded."""
    rule3: EndpointRule
    """The utterance reached 20 s."""
    def __init__(self) -> None: ...

class StreamingConfig:
    """wenet_rt::StreamingConfig (include/wenet_rt/streaming.h)."""
    device: str
    precision: str
    mode: str
    beam: int
    ctc_weight: float
    rescoring_weight: float
    reverse_weight: float
    chunk_size: int
    num_left_chunks: int
    endpoint: EndpointConfig
    max_utterance_seconds: float
    max_streams: int
    max_batch: int
    threads: int
    def __init__(self) -> None: ...
    def validate(self) -> None:
        """Raises wenet_rt.Error naming a bad field."""
    def describe(self) -> str: ...

class Sentence:
    """One hypothesis of a streaming result."""
    @property
    def text(self) -> str: ...
    @property
    def tokens(self) -> List[int]: ...
    @property
    def word_pieces(self) -> List[WordPiece]:
        """Final results only; ms from the start of the stream."""
    @property
    def timestamps(self) -> List[Tuple[int, int]]:
        """(start_ms, end_ms) per token (final results only)."""
    @property
    def score(self) -> float: ...

class StreamResult:
    """A partial or final result of a stream."""
    @property
    def is_final(self) -> bool: ...
    @property
    def utterance(self) -> int:
        """0, 1, ... within the stream (continuous decoding)."""
    @property
    def nbest(self) -> List[Sentence]:
        """Best first; at most the stream's nbest."""
    @property
    def start_ms(self) -> int:
        """The audio the utterance covers so far, ms from the stream's start."""
    @property
    def end_ms(self) -> int: ...
    @property
    def last(self) -> bool:
        """The stream's last result (done follows)."""
    @property
    def text(self) -> str:
        """The best hypothesis' text."""
    @property
    def tokens(self) -> List[int]: ...
    @property
    def word_pieces(self) -> List[WordPiece]: ...
    @property
    def timestamps(self) -> List[Tuple[int, int]]:
        """(start_ms, end_ms) per token of the best hypothesis (final results only)."""
    @property
    def score(self) -> float: ...
    def to_dict(self) -> dict: ...

class StreamingStats:
    """Counters of a streaming recognizer."""
    @property
    def active_streams(self) -> int: ...
    @property
    def streams_opened(self) -> int: ...
    @property
    def chunks(self) -> int: ...
    @property
    def encoder_calls(self) -> int: ...
    @property
    def finals(self) -> int: ...
    @property
    def audio_seconds(self) -> float: ...
    @property
    def max_batch_seen(self) -> int: ...
    @property
    def encoder_ms(self) -> float: ...

class Stream:
    """One engine stream (use wenet_rt.Stream)."""
    def accept_waveform_f32(self, samples: npt.NDArray[np.float32], sample_rate: int) -> None: ...
    def accept_waveform_i16(self, samples: npt.NDArray[np.int16], sample_rate: int) -> None: ...
    def input_finished(self) -> None: ...
    def poll(self) -> List[StreamResult]: ...
    def wait(self, timeout_s: float) -> List[StreamResult]: ...
    def sync(self, timeout_s: float) -> bool: ...
    @property
    def partial(self) -> str: ...
    @property
    def done(self) -> bool: ...
    @property
    def error(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...

class StreamingRecognizer:
    """The streaming engine (use wenet_rt.StreamingRecognizer)."""
    def __init__(self, model_dir: str, config: StreamingConfig) -> None: ...
    def create_stream(self, nbest: int, continuous_decoding: bool) -> Stream: ...
    @property
    def sample_rate(self) -> int: ...
    def describe(self) -> str: ...
    @property
    def config(self) -> StreamingConfig:
        """As given, with the device's defaults filled in (max_streams, ...)."""
    def stats(self) -> StreamingStats: ...
    def close(self) -> None: ...
