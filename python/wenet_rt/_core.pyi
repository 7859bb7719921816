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
