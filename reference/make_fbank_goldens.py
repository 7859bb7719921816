#!/usr/bin/env python3
"""Writes the frontend goldens under tests/data/frontend/: small WAV files of synthetic,
speech-like signals and the fbank that kaldi-native-fbank computes for them with WeNet's options.

WeNet feeds torchaudio.compliance.kaldi.fbank the waveform as torchaudio.load returns it (floats
normalized to [-1, 1)) times 32768, with dither 0, energy_floor 0 and Kaldi defaults otherwise
(povey window, pre-emphasis 0.97, DC removal, snip_edges, power spectrum, log floor FLT_EPSILON).
kaldi-native-fbank implements the same Kaldi algorithm. The expected features are computed from
exactly the samples that libsndfile returns for each file (the quantized values), so the C++ test
compares like with like.

    pip install kaldi-native-fbank numpy
    python3 reference/make_fbank_goldens.py            # writes tests/data/frontend/
"""

import argparse
import json
import pathlib
import struct

import kaldi_native_fbank as knf
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def speech_like(seconds, rate, seed, silence=None):
    """Voiced-speech-like signal: a glottal-pulse-like harmonic series with a wandering pitch,
    shaped by three moving formant resonances, a syllable-rate amplitude envelope, some aspiration
    noise, and optionally a stretch of digital silence (exact zeros)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)) + 15 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    formants = [(600 + 250 * np.sin(2 * np.pi * 1.3 * t), 90),
                (1500 + 500 * np.sin(2 * np.pi * 0.9 * t + 1.0), 120),
                (2600 + 200 * np.sin(2 * np.pi * 0.5 * t + 2.0), 180)]
    x = np.zeros(n)
    for k in range(1, 60):
        fk = k * f0
        audible = fk < 0.45 * rate
        gain = np.zeros(n)
        for fc, bw in formants:
            gain += 1.0 / (1.0 + ((fk - fc) / bw) ** 2)
        gain *= 1.0 / k  # glottal source roll-off
        x += audible * gain * np.sin(k * phase)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t - np.pi / 2)  # ~4 syllables per second
    envelope *= np.minimum(1.0, np.minimum(t, seconds - t) / 0.05)   # fade in/out
    x = x * envelope + 0.01 * rng.standard_normal(n)
    x = 0.6 * x / np.max(np.abs(x))
    if silence is not None:
        begin, end = (int(s * rate) for s in silence)
        x[begin:end] = 0.0
    return x


def quantize(x, bits):
    """The values libsndfile returns (normalized floats) for x stored as `bits`-bit PCM."""
    scale = float(1 << (bits - 1))
    q = np.clip(np.round(x * scale), -scale, scale - 1)
    return q.astype(np.int64), (q / scale).astype(np.float32)


def write_wav(path, channels, rate, fmt, frames):
    """frames: (n, channels) array of ints (PCM) or float32 (fmt 'f32')."""
    if fmt == "s16":
        tag, width, data = 1, 2, frames.astype("<i2").tobytes()
    elif fmt == "s24":
        tag, width = 1, 3
        v = frames.astype("<i4").reshape(-1)
        data = np.stack([(v >> s) & 0xFF for s in (0, 8, 16)], axis=1).astype(np.uint8).tobytes()
    elif fmt == "f32":
        tag, width, data = 3, 4, frames.astype("<f4").tobytes()
    else:
        raise ValueError(fmt)
    fmt_chunk = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * width,
                            channels * width, 8 * width)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
    body += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def knf_fbank(samples, rate, num_mel_bins):
    """Kaldi fbank as WeNet computes it; samples are normalized floats (scaled here x32768)."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = rate
    opts.frame_opts.frame_length_ms = 25
    opts.frame_opts.frame_shift_ms = 10
    opts.frame_opts.dither = 0
    opts.frame_opts.preemph_coeff = 0.97
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.round_to_power_of_two = True
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = num_mel_bins
    opts.mel_opts.low_freq = 20
    opts.mel_opts.high_freq = 0
    opts.energy_floor = 0.0
    opts.use_energy = False
    opts.use_log_fbank = True
    opts.use_power = True
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(rate, (samples.astype(np.float64) * 32768.0).tolist())
    fbank.input_finished()
    frames = [np.asarray(fbank.get_frame(i), dtype=np.float32) for i in range(fbank.num_frames_ready)]
    return np.stack(frames) if frames else np.zeros((0, num_mel_bins), np.float32)


def torchaudio_cross_check(samples, rate, num_mel_bins, expected):
    """WeNet's own path (torchaudio.compliance.kaldi.fbank), when torchaudio is installed: returns
    max |torchaudio - kaldi-native-fbank|, or None. Measured with torch 2.11: <= 8.5e-4, all in
    low-energy bins of the lowest mel filters (float32 rounding on both sides)."""
    try:
        import torch
        import torchaudio.compliance.kaldi as kaldi
    except ImportError:
        return None
    wav = torch.tensor(np.asarray(samples, np.float32)).unsqueeze(0) * (1 << 15)
    feats = kaldi.fbank(wav, num_mel_bins=num_mel_bins, frame_length=25, frame_shift=10,
                        dither=0.0, energy_floor=0.0, sample_frequency=rate).numpy()
    return float(np.abs(feats - expected).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "tests/data/frontend")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    rate = 16000
    cases = []

    def add_case(name, wav_name, samples, num_mel_bins=80):
        feats = knf_fbank(samples, rate, num_mel_bins)
        feats.astype("<f4").tofile(out / f"{name}.fbank.f32")
        cases.append({"name": name, "wav": wav_name, "sample_rate": rate,
                      "num_mel_bins": num_mel_bins, "num_samples": int(len(samples)),
                      "num_frames": int(feats.shape[0]), "fbank": f"{name}.fbank.f32"})
        diff = torchaudio_cross_check(samples, rate, num_mel_bins, feats)
        if diff is not None:
            print(f"{name}: max |torchaudio - kaldi-native-fbank| = {diff:.3g}")

    # 2 s of 16-bit speech with 0.1 s of digital silence (frames there hit the log floor).
    q, s16 = quantize(speech_like(2.0, rate, seed=1, silence=(1.2, 1.3)), 16)
    write_wav(out / "speech_16k_s16.wav", 1, rate, "s16", q[:, None])
    add_case("speech_16k_s16", "speech_16k_s16.wav", s16)
    add_case("speech_16k_s16_40bins", "speech_16k_s16.wav", s16, num_mel_bins=40)

    q, short = quantize(speech_like(0.3, rate, seed=2), 16)
    write_wav(out / "short_16k_s16.wav", 1, rate, "s16", q[:, None])
    add_case("short_16k_s16", "short_16k_s16.wav", short)

    q, s24 = quantize(speech_like(1.0, rate, seed=3), 24)
    write_wav(out / "speech_16k_s24.wav", 1, rate, "s24", q[:, None])
    add_case("speech_16k_s24", "speech_16k_s24.wav", s24)

    f32 = speech_like(1.0, rate, seed=4).astype(np.float32)
    write_wav(out / "speech_16k_f32.wav", 1, rate, "f32", f32[:, None])
    add_case("speech_16k_f32", "speech_16k_f32.wav", f32)

    # Stereo: speech on the first channel, a 1 kHz tone on the second (must be ignored).
    q0, left = quantize(speech_like(1.0, rate, seed=5), 16)
    q1, _ = quantize(0.5 * np.sin(2 * np.pi * 1000 * np.arange(len(q0)) / rate), 16)
    write_wav(out / "stereo_16k_s16.wav", 2, rate, "s16", np.stack([q0, q1], axis=1))
    add_case("stereo_16k_s16", "stereo_16k_s16.wav", left)

    # 8 kHz speech (for the resampling path; no fbank golden).
    q, _ = quantize(speech_like(1.0, 8000, seed=6), 16)
    write_wav(out / "speech_8k_s16.wav", 1, 8000, "s16", q[:, None])

    manifest = {"generator": "reference/make_fbank_goldens.py",
                "reference": f"kaldi-native-fbank {getattr(knf, '__version__', '?')}",
                "options": "WeNet: x32768, 25/10 ms, povey, preemph 0.97, dither 0, energy_floor 0,"
                           " snip_edges, power, log floor FLT_EPSILON, low_freq 20, high_freq 0",
                "fbank_layout": "raw little-endian float32, num_frames x num_mel_bins",
                "cases": cases,
                "resample": {"wav": "speech_8k_s16.wav", "sample_rate": 8000, "num_samples": 8000}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {len(cases)} cases to {out} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
