"""Kaldi log-mel fbank in plain torch, with WeNet's options, batched and device-agnostic.

WeNet computes features with torchaudio.compliance.kaldi.fbank on the waveform scaled to the
int16 range; torchaudio is not usable everywhere this runs, so the same algorithm is written out
here: frames of 25 ms every 10 ms (snip_edges), per-frame DC removal, pre-emphasis 0.97 (first
sample against itself), povey window (Hann^0.85), zero-pad to 512, power spectrum, Kaldi's
triangular mel filters between 20 Hz and Nyquist, log floored at FLT_EPSILON. Dither 0.

    python3 reference/demo/fbank.py     # compares with tests/data/frontend (kaldi-native-fbank)
"""

import math

import torch

FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
PREEMPH = 0.97
LOW_FREQ = 20.0


def _mel(f):
    return 1127.0 * math.log(1.0 + f / 700.0)


def mel_banks(num_bins: int, padded: int, rate: int) -> torch.Tensor:
    """(padded//2 + 1, num_bins) Kaldi mel filters (the Nyquist row is zero, as in Kaldi)."""
    nyquist = 0.5 * rate
    lo, hi = _mel(LOW_FREQ), _mel(nyquist)
    delta = (hi - lo) / (num_bins + 1)
    half = padded // 2
    fft_mel = 1127.0 * torch.log1p(torch.arange(half, dtype=torch.float64) * (rate / padded) / 700.0)
    left = lo + torch.arange(num_bins, dtype=torch.float64) * delta
    center, right = left + delta, left + 2 * delta
    up = (fft_mel[:, None] - left) / (center - left)
    down = (right - fft_mel[:, None]) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.cat([banks, torch.zeros(1, num_bins, dtype=torch.float64)]).float()


class KaldiFbank:
    """fbank(wave) for one (N,) waveform, or frames_batch for many; samples in the int16 range."""

    def __init__(self, num_bins: int = 80, rate: int = 16000, device="cpu"):
        self.length = int(rate * FRAME_LENGTH_MS / 1000)
        self.shift = int(rate * FRAME_SHIFT_MS / 1000)
        self.padded = 1 << (self.length - 1).bit_length()
        self.window = torch.hann_window(self.length, periodic=False, dtype=torch.float64) \
            .pow(0.85).float().to(device)
        self.banks = mel_banks(num_bins, self.padded, rate).to(device)
        self.eps = torch.finfo(torch.float32).eps
        self.device = device

    def num_frames(self, num_samples: int) -> int:
        return 0 if num_samples < self.length else 1 + (num_samples - self.length) // self.shift

    def from_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(F, length) raw frames -> (F, num_bins) log-mel."""
        x = frames - frames.mean(dim=1, keepdim=True)
        prev = torch.cat([x[:, :1], x[:, :-1]], dim=1)
        x = (x - PREEMPH * prev) * self.window
        spec = torch.fft.rfft(x, n=self.padded).abs().pow(2)
        return torch.log(torch.clamp(spec @ self.banks, min=self.eps))

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        n = self.num_frames(wave.numel())
        if n == 0:
            return torch.zeros(0, self.banks.size(1), device=wave.device)
        frames = wave.float().unfold(0, self.length, self.shift)[:n]
        return self.from_frames(frames)


def _check_goldens():
    import json
    import pathlib
    import wave as wavmod
    import numpy as np
    root = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data" / "frontend"
    manifest = json.loads((root / "manifest.json").read_text())
    worst = 0.0
    for case in manifest["cases"]:
        if not case["wav"].endswith("_s16.wav") or case["name"].startswith("stereo"):
            continue
        with wavmod.open(str(root / case["wav"])) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32)
        want = np.fromfile(root / case["fbank"], dtype="<f4").reshape(-1, case["num_mel_bins"])
        got = KaldiFbank(case["num_mel_bins"], case["sample_rate"])(torch.from_numpy(pcm)).numpy()
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
        worst = max(worst, diff)
        print(f"{case['name']}: frames {got.shape[0]} (want {want.shape[0]}), max abs diff {diff:.3g}")
    print("OK" if worst < 2e-3 else "MISMATCH", f"(worst {worst:.3g}, tolerance 2e-3)")
    return worst < 2e-3


if __name__ == "__main__":
    raise SystemExit(0 if _check_goldens() else 1)
