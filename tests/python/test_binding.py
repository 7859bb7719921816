"""The Python binding against the command line, the end-to-end goldens and bad input."""
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import wenet_rt
from conftest import DEMO, EXAMPLES, ROOT, read_wav_int16, run_cli

FRONTEND = ROOT / "tests" / "data" / "frontend"


# --- against the command line and the demo's reference text -----------------------------------------

def test_files_match_cli(demo_rec, cli_demo_text):
    results = demo_rec.transcribe(EXAMPLES)
    assert [r.key for r in results] == [p.stem for p in EXAMPLES]
    assert {r.key: r.text for r in results} == cli_demo_text
    for r in results:
        assert r.ok and r.error == ""
        assert len(r.tokens) == len(r.word_pieces) == len(r.timestamps) > 0
        assert all(0 <= s <= e <= r.duration * 1000 + 40 for s, e in r.timestamps)


def test_demo_reference_text(demo_rec):
    # models/demo/examples/text: what was said (the demo model gets these right).
    ref = dict(line.split(" ", 1) for line in (DEMO / "examples" / "text").read_text().splitlines())
    assert {r.key: r.text for r in demo_rec.transcribe(EXAMPLES)} == ref


def test_json_matches_cli():
    cli = [json.loads(line) for line in run_cli("transcribe", DEMO, *EXAMPLES, "--format", "json").splitlines()]
    p = subprocess.run([sys.executable, "-m", "wenet_rt", "transcribe", str(DEMO), *map(str, EXAMPLES), "--format",
                        "json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert [json.loads(line) for line in p.stdout.splitlines()] == cli


def test_module_cli_text_matches_cli():
    cli = run_cli("transcribe", DEMO, *EXAMPLES, "--mode", "ctc_prefix_beam")
    p = subprocess.run([sys.executable, "-m", "wenet_rt", "transcribe", str(DEMO), *map(str, EXAMPLES), "--mode",
                        "ctc_prefix_beam"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout == cli
    assert "5 files (0 failed)" in p.stderr


# --- the end-to-end goldens (tests/data/e2e, as tests/api/test_transcribe.cc checks them) ------------

GOLDEN_MODELS = ["conformer_tiny", "u2pp_tiny", "transformer_tiny", "conformer_causal"]


@pytest.mark.parametrize("model", GOLDEN_MODELS)
def test_e2e_goldens(model):
    g = json.loads((ROOT / "tests" / "data" / "e2e" / f"{model}.json").read_text())
    keys = sorted(g["utterances"])
    wavs = [ROOT / g["utterances"][k]["wav"] for k in keys]
    compared = 0
    for mode in wenet_rt.MODES:
        rec = wenet_rt.Recognizer(ROOT / g["model_dir"], mode=mode, beam=10, batch_size=16)
        results = rec.transcribe(wavs, keys=keys)
        for k, r in zip(keys, results):
            u, e = g["utterances"][k], g["utterances"][k][mode]
            assert r.key == k and r.error == ""
            assert r.duration == pytest.approx(u["duration"], abs=1e-9)
            if not e["kept"]:
                continue
            compared += 1
            assert r.tokens == e["tokens"], (model, mode, k)
            assert r.text == e["text"], (model, mode, k)
            if e["score_checked"]:
                assert r.score == pytest.approx(e["score"], abs=1e-3)
    assert compared > 0


# --- numpy input ------------------------------------------------------------------------------------

def test_numpy_equals_files(demo_rec):
    by_file = demo_rec.transcribe(EXAMPLES)
    pcm = [read_wav_int16(p) for p in EXAMPLES]
    rates = [r for _, r in pcm]
    as_int16 = demo_rec.transcribe([a for a, _ in pcm], sample_rate=rates)
    as_float = demo_rec.transcribe([a.astype(np.float32) / 32768 for a, _ in pcm], sample_rate=rates[0])
    for f, i, x in zip(by_file, as_int16, as_float):
        assert (f.text, f.tokens, f.score) == (i.text, i.tokens, i.score) == (x.text, x.tokens, x.score)
        assert f.timestamps == i.timestamps == x.timestamps
    assert [r.key for r in as_int16] == [str(i) for i in range(len(EXAMPLES))]
    one = demo_rec.transcribe(pcm[0][0], sample_rate=pcm[0][1])
    assert isinstance(one, wenet_rt.Result) and one.text == by_file[0].text


def test_numpy_resampled_equals_file():
    # 8 kHz audio: resampled by the engine, from a file or from an array alike.
    path = FRONTEND / "speech_8k_s16.wav"
    if not path.exists():
        pytest.skip(f"{path} missing")
    rec = wenet_rt.Recognizer(ROOT / "tests/data/wenet-goldens/transformer_tiny", mode="ctc_greedy", threads=2)
    a, rate = read_wav_int16(path)
    assert rate == 8000 and rec.sample_rate == 16000
    f, x = rec.transcribe(path), rec.transcribe(a, sample_rate=rate)
    assert (f.tokens, f.duration) == (x.tokens, x.duration)


def test_mixed_inputs_and_keys(demo_rec):
    a, rate = read_wav_int16(EXAMPLES[1])
    rs = demo_rec.transcribe([EXAMPLES[0], a, str(EXAMPLES[2])], sample_rate=rate, keys=["x", "y", "z"])
    assert [r.key for r in rs] == ["x", "y", "z"]
    ref = demo_rec.transcribe(EXAMPLES[:3])
    assert [r.text for r in rs] == [r.text for r in ref]


def test_strided_and_readonly_arrays(demo_rec):
    a, rate = read_wav_int16(EXAMPLES[0])
    f = (a.astype(np.float32) / 32768)
    ro = f.copy()
    ro.setflags(write=False)
    strided = np.repeat(f, 2)[::2]  # not contiguous: copied, same result
    ref = demo_rec.transcribe(EXAMPLES[0]).tokens
    assert demo_rec.transcribe(ro, sample_rate=rate).tokens == ref
    assert demo_rec.transcribe(strided, sample_rate=rate).tokens == ref


# --- bad input --------------------------------------------------------------------------------------

def test_missing_model_dir():
    with pytest.raises(ValueError, match="does not exist"):
        wenet_rt.Recognizer("/nonexistent/model")


def test_bad_model_dir(tmp_path):
    with pytest.raises(wenet_rt.Error) as e:
        wenet_rt.Recognizer(tmp_path)
    assert isinstance(e.value, RuntimeError) and str(tmp_path) in str(e.value)


def test_bad_options():
    with pytest.raises(ValueError, match="mode"):
        wenet_rt.Recognizer(DEMO, mode="beam")
    with pytest.raises(ValueError, match="device"):
        wenet_rt.Recognizer(DEMO, device="tpu")
    with pytest.raises(ValueError, match="beam"):
        wenet_rt.Recognizer(DEMO, beam=0)


@pytest.fixture(scope="module")
def cuda_rec():
    if not wenet_rt.HAS_CUDA:
        pytest.skip("built without CUDA")
    try:
        return wenet_rt.Recognizer(DEMO, device="cuda", precision="fp16")
    except wenet_rt.Error as e:
        pytest.skip(f"no usable GPU: {e}")


def test_cuda_matches_cli(cuda_rec, cli_demo_text):
    assert {r.key: r.text for r in cuda_rec.transcribe(EXAMPLES)} == cli_demo_text
    pcm = [read_wav_int16(p)[0] for p in EXAMPLES]
    assert [r.text for r in cuda_rec.transcribe(pcm, sample_rate=16000)] == [cli_demo_text[p.stem] for p in EXAMPLES]


@pytest.mark.skipif(wenet_rt.HAS_CUDA, reason="built with CUDA")
def test_cuda_without_cuda_build():
    with pytest.raises(wenet_rt.Error):
        wenet_rt.Recognizer(DEMO, device="cuda")


@pytest.mark.parametrize("array, rate, exc, match", [
    (np.zeros(16000, np.float64), 16000, ValueError, "float64"),
    (np.zeros(16000, np.int32), 16000, ValueError, "int32"),
    (np.zeros((2, 16000), np.float32), 16000, ValueError, "1-D"),
    (np.zeros((), np.float32), 16000, ValueError, "1-D"),
    (np.zeros(0, np.float32), 16000, ValueError, "empty"),
    (np.zeros(16000, np.float32), 0, ValueError, "sample_rate"),
    (np.zeros(16000, np.float32), -16000, ValueError, "sample_rate"),
    (np.zeros(16000, np.float32), 10_000_000, ValueError, "sample_rate"),
    (np.zeros(16000, np.float32), None, ValueError, "sample_rate is required"),
    (np.zeros(16000, np.float32), 16000.0, TypeError, "int"),
    ([0.0] * 16000, 16000, TypeError, "numpy array"),
])
def test_bad_arrays(demo_rec, array, rate, exc, match):
    with pytest.raises(exc, match=match):
        demo_rec.transcribe(array, sample_rate=rate)
    with pytest.raises(exc, match=match):  # in a list too: argument errors are raised up front
        demo_rec.transcribe([np.zeros(16000, np.float32), array], sample_rate=rate)


def test_failures(demo_rec, tmp_path):
    with pytest.raises(wenet_rt.Error, match="missing.wav"):
        demo_rec.transcribe(tmp_path / "missing.wav")
    with pytest.raises(wenet_rt.Error, match="too short"):
        demo_rec.transcribe(np.zeros(100, np.float32), sample_rate=16000)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really")
    rs = demo_rec.transcribe([EXAMPLES[0], tmp_path / "missing.wav", junk])  # a list goes on
    assert rs[0].ok and rs[0].text
    assert not rs[1].ok and "missing.wav" in rs[1].error and rs[1].text == ""
    assert not rs[2].ok and "junk.wav" in rs[2].error
    with pytest.raises(ValueError, match="keys"):
        demo_rec.transcribe(EXAMPLES[:2], keys=["a"])


def test_module_cli_errors(tmp_path):
    p = subprocess.run([sys.executable, "-m", "wenet_rt", "transcribe", str(tmp_path / "nope"), "a.wav"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "does not exist" in p.stderr


# --- threads ----------------------------------------------------------------------------------------

def test_shared_recognizer_from_threads(demo_rec):
    ref = [r.text for r in demo_rec.transcribe(EXAMPLES)]
    pcm = [read_wav_int16(p) for p in EXAMPLES]
    out, errors = {}, []

    def work(i):
        try:
            for _ in range(2):
                if i % 2:
                    out[i] = [r.text for r in demo_rec.transcribe(EXAMPLES)]
                else:
                    out[i] = [r.text for r in demo_rec.transcribe([a for a, _ in pcm], sample_rate=16000)]
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and all(v == ref for v in out.values()) and len(out) == 4


def test_recognizers_on_threads(cli_demo_text):
    out = {}

    def work(i):
        rec = wenet_rt.Recognizer(DEMO, mode="attention_rescoring", threads=1)
        out[i] = {r.key: r.text for r in rec.transcribe(EXAMPLES)}

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 3 and all(v == cli_demo_text for v in out.values())


def test_gil_released(demo_rec):
    # While the engine works on a thread, Python on this one keeps running.
    long = np.concatenate([read_wav_int16(p)[0] for p in EXAMPLES] * 3)
    done = threading.Event()
    t = threading.Thread(target=lambda: (demo_rec.transcribe(long, sample_rate=16000), done.set()))
    ticks = 0
    t.start()
    while not done.is_set():
        ticks += 1
    t.join()
    assert ticks > 1000


def test_result_api(demo_rec):
    r = demo_rec.transcribe(EXAMPLES[0])
    d = r.to_dict()
    assert d["key"] == r.key and d["text"] == r.text and d["tokens"] == r.tokens
    assert [(p["start"], p["end"]) for p in d["word_pieces"]] == r.timestamps
    assert r.word_pieces[0].word and "Result(" in repr(r) and "WordPiece(" in repr(r.word_pieces[0])
    assert demo_rec.sample_rate == 16000 and "demo" in repr(demo_rec)
    assert isinstance(demo_rec.describe(), str)
