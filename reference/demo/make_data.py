#!/usr/bin/env python3
"""Synthetic English speech for the demo model: espeak-ng voices saying template sentences.

Writes, under --out:
  wav/{train,test}/NNN/KEY.wav   16 kHz mono 16-bit
  train.jsonl, test.jsonl        one {"key", "wav" (relative to --out), "txt", "dur", "voice", ...}
  test_wav.scp, test_text        Kaldi-style lists of the test set (absolute paths) for wenet-rt
  stats.json                     counts, vocabulary, timings

Every utterance draws its voice (language variant + voice variant), speed (-s), pitch (-p),
amplitude (-a) and word gap (-g), then speed perturbation (x0.9 / 1.0 / 1.1, by resampling),
volume, leading/trailing pauses and additive noise (white or pink, random SNR; some stay clean),
from a random state seeded by (seed, split, index): the output does not depend on --jobs.
Test sentences are drawn first and no training sentence equals one of them; a test sentence with
a word that training never says is dropped.

The first --examples test utterances are "presentable" (common voices, moderate speed, little
noise): train.py picks the shipped examples among them.

espeak-ng is called by name (PATH) and reads its data from ESPEAK_DATA_PATH when set.
"""

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
import wave
from math import gcd

import numpy as np
from scipy.signal import resample_poly

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sentences import SentenceGenerator  # noqa: E402

RATE = 16000
LANGUAGES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
             "en-029", "en-us-nyc"]
# Voice variants (espeak-ng-data/voices/!v) left out: whispers, croak and robotic or effect voices.
EXCLUDED_VARIANTS = {"whisper", "whisperf", "croak", "Demonic", "announcer", "UniRobot",
                     "anikaRobot", "Tweaky", "fast", "Mr"} | {f"robosoft{s}" for s in
                                                             ["", "2", "3", "4", "5", "6", "7", "8"]}
PRESENTABLE_VARIANTS = ["m1", "f1", "m3", "f2", "m2", "f3", "m4", "f4", "m5", "f5"]
SPLIT_IDS = {"train": 1, "test": 2}


def espeak_variants() -> list:
    """Voice variant file names espeak-ng has here (from `espeak-ng --voices=variant`)."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1:]
    names = []
    for line in out:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("!v/"):
            names.append(cols[4][3:])
    return sorted(n for n in names if n not in EXCLUDED_VARIANTS)


def synthesize(text: str, voice: str, speed: int, pitch: int, amp: int, gap: int):
    """espeak-ng's 16-bit mono output as (float samples in [-1, 1), sample rate)."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(amp),
           "-g", str(gap), "--stdout", text]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    # With --stdout the RIFF sizes are placeholders: read the fmt chunk, then all bytes after "data".
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise RuntimeError(f"espeak-ng {voice}: expected a WAV on stdout, got {raw[:12]!r}")
    rate = int.from_bytes(raw[24:28], "little")
    pos = raw.find(b"data", 12)
    if pos < 0:
        raise RuntimeError(f"espeak-ng {voice}: no data chunk")
    pcm = np.frombuffer(raw[pos + 8:len(raw) - (len(raw) - pos - 8) % 2], dtype="<i2")
    return pcm.astype(np.float32) / 32768.0, rate


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x / (np.std(x) + 1e-12)


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (espeak-ng)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def render(job):
    """One utterance: job = (split, index, text, seed, out_dir, presentable, variants)."""
    split, index, text, seed, out_dir, presentable, variants = job
    t0 = _cpu_seconds()
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    if presentable:
        lang = LANGUAGES[index % 2]
        variant = PRESENTABLE_VARIANTS[index % len(PRESENTABLE_VARIANTS)]
        speed, pitch, amp, gap = int(rng.integers(150, 176)), int(rng.integers(40, 61)), 100, 0
        perturb, snr, noise_kind = 1.0, float(rng.uniform(30, 40)), "white"
    else:
        lang = LANGUAGES[rng.integers(len(LANGUAGES))]
        variant = variants[rng.integers(len(variants))] if rng.random() < 0.9 else ""
        speed, pitch = int(rng.integers(130, 201)), int(rng.integers(30, 71))
        amp = int(rng.integers(70, 131))
        gap = int(rng.choice([0, 0, 0, 1, 2, 4]))
        perturb = float(rng.choice([0.9, 1.0, 1.1], p=[0.2, 0.6, 0.2]))
        snr = float(rng.uniform(8, 40)) if rng.random() < 0.8 else None
        noise_kind = "white" if rng.random() < 0.5 else "pink"
    voice = lang + ("+" + variant if variant else "")
    x, rate = synthesize(text, voice, speed, pitch, amp, gap)
    # Speed perturbation by resampling: played at 16 kHz, rate * perturb -> 16000.
    src = int(round(rate * perturb))
    g = gcd(RATE, src)
    x = resample_poly(x, RATE // g, src // g).astype(np.float32)
    lead, trail = (rng.uniform(0.0, 0.3, size=2) * RATE).astype(int)
    x = np.concatenate([np.zeros(lead, np.float32), x, np.zeros(trail, np.float32)])
    peak = float(np.max(np.abs(x))) + 1e-9
    x *= (float(rng.uniform(0.5, 0.9)) if presentable else float(rng.uniform(0.08, 0.95))) / peak
    if snr is not None:
        active = x[np.abs(x) > 0.02 * np.max(np.abs(x))]
        power = float(np.mean(active ** 2)) if active.size else 1e-6
        noise = rng.standard_normal(x.size) if noise_kind == "white" else pink_noise(x.size, rng)
        x = x + noise.astype(np.float32) * np.sqrt(power / 10 ** (snr / 10))
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
    key = f"{split}{index:06d}"
    rel = os.path.join("wav", split, f"{index // 1000:03d}", key + ".wav")
    path = os.path.join(out_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return {"key": key, "wav": rel, "txt": text, "dur": round(pcm.size / RATE, 3),
            "voice": voice, "speed": speed, "pitch": pitch, "perturb": perturb,
            "snr": None if snr is None else round(snr, 1), "noise": noise_kind if snr else None,
            "presentable": presentable,
            "cpu_s": _cpu_seconds() - t0}


def draw_sentences(num_train: int, num_test: int, seed: int):
    test, seen = [], set()
    gen = SentenceGenerator(seed * 1000 + SPLIT_IDS["test"])
    while len(test) < num_test:
        s = gen.sentence()
        if s not in seen:
            seen.add(s)
            test.append(s)
    train, train_set = [], set()
    gen = SentenceGenerator(seed * 1000 + SPLIT_IDS["train"])
    attempts = 0
    while len(train) < num_train:
        s = gen.sentence()
        attempts += 1
        if s in seen or (s in train_set and attempts < 50 * num_train):
            continue  # unique when the grammar allows; never a test sentence
        train_set.add(s)
        train.append(s)
    train_words = {w for s in train for w in s.split()}
    kept = [s for s in test if set(s.split()) <= train_words]
    return train, kept, len(test) - len(kept), train_words


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=40000, help="training utterances")
    ap.add_argument("--test", type=int, default=500, help="held-out test utterances")
    ap.add_argument("--examples", type=int, default=10,
                    help="presentable test utterances (example candidates) at the start of test")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("--test-only", action="store_true",
                    help="render only the held-out test set (the same as a full run's with the same --train, "
                         "--test and --seed): for evaluating a model on a machine without the training data")
    args = ap.parse_args()
    t_start = time.time()
    os.makedirs(args.out, exist_ok=True)
    out_dir = os.path.abspath(args.out)

    variants = espeak_variants()
    if not variants:
        sys.exit("espeak-ng lists no voice variants: is ESPEAK_DATA_PATH right?")
    train_txt, test_txt, dropped, train_words = draw_sentences(args.train, args.test, args.seed)
    assert not set(test_txt) & set(train_txt)
    print(f"sentences: {len(train_txt)} train ({len(set(train_txt))} distinct), {len(test_txt)} "
          f"test (never in train; {dropped} dropped for words train lacks), "
          f"{len(train_words)} words in train; {len(variants)} voice variants x "
          f"{len(LANGUAGES)} languages", flush=True)

    jobs = [("test", i, s, args.seed, out_dir, i < args.examples, variants)
            for i, s in enumerate(test_txt)]
    if not args.test_only:
        jobs += [("train", i, s, args.seed, out_dir, False, variants) for i, s in enumerate(train_txt)]
    results = {"train": [], "test": []}
    t_synth = time.time()
    with multiprocessing.Pool(args.jobs) as pool:
        for n, r in enumerate(pool.imap(render, jobs, chunksize=16), 1):
            results["test" if r["key"].startswith("test") else "train"].append(r)
            if n % 5000 == 0:
                print(f"  {n}/{len(jobs)} utterances, {time.time() - t_synth:.0f} s", flush=True)
    wall = time.time() - t_synth

    for split, rows in results.items():
        with open(os.path.join(out_dir, f"{split}.jsonl"), "w") as f:
            for r in rows:
                f.write(json.dumps({k: v for k, v in r.items() if k != "cpu_s"}) + "\n")
    with open(os.path.join(out_dir, "test_wav.scp"), "w") as scp, \
            open(os.path.join(out_dir, "test_text"), "w") as txt:
        for r in results["test"]:
            scp.write(f"{r['key']} {os.path.join(out_dir, r['wav'])}\n")
            txt.write(f"{r['key']} {r['txt']}\n")

    cpu = [r["cpu_s"] for rows in results.values() for r in rows]
    hours = {k: sum(r["dur"] for r in rows) / 3600 for k, rows in results.items()}
    stats = {"seed": args.seed, "train": len(results["train"]), "test": len(results["test"]),
             "train_hours": round(hours["train"], 2), "test_hours": round(hours["test"], 3),
             "words": sorted(train_words), "voice_variants": variants, "languages": LANGUAGES,
             "jobs": args.jobs, "synthesis_wall_s": round(wall, 1),
             "cpu_ms_per_utterance": round(1000 * float(np.mean(cpu)), 1),
             "wall_ms_per_utterance_per_job": round(1000 * wall * args.jobs / len(cpu), 1)}
    with open(os.path.join(out_dir, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print(f"wrote {len(cpu)} utterances ({hours['train']:.2f} h train, {hours['test'] * 60:.1f} "
          f"min test) to {out_dir} in {wall:.1f} s on {args.jobs} processes: "
          f"{stats['wall_ms_per_utterance_per_job']} ms wall per utterance per process "
          f"({stats['cpu_ms_per_utterance']} ms CPU incl. espeak-ng); "
          f"total {time.time() - t_start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
