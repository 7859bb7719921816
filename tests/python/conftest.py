"""Shared fixtures of the Python package tests (pytest tests/python, after `pip install .`)."""
import os
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "demo"
EXAMPLES = sorted((DEMO / "examples").glob("*.wav"))


def read_wav_int16(path):
    """A PCM-16 WAV as (int16 samples of channel 0, rate), with the standard library."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2, path
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data.reshape(-1, w.getnchannels())[:, 0].copy(), w.getframerate()


def cli_binary():
    """The C++ command line (WENET_RT_CLI, or build/wenet-rt)."""
    exe = Path(os.environ.get("WENET_RT_CLI", ROOT / "build" / "wenet-rt"))
    return exe if exe.is_file() and os.access(exe, os.X_OK) else None


def run_cli(*args):
    exe = cli_binary()
    if exe is None:
        pytest.skip("the C++ command line is not built (scripts/build.sh, or set WENET_RT_CLI)")
    p = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="session")
def cli_demo_text():
    """`wenet-rt transcribe models/demo examples/*.wav` on CPU: {key: text}."""
    out = run_cli("transcribe", DEMO, *EXAMPLES, "--device", "cpu")
    return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.fixture(scope="session")
def demo_rec():
    import wenet_rt
    return wenet_rt.Recognizer(DEMO, device="cpu")
