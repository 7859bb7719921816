"""Streaming through Python (wenet_rt.StreamingRecognizer) against `wenet-rt transcribe --streaming`,
partial results, continuous decoding, threads, bad input."""
import json
import subprocess
import sys
import threading

import numpy as np
import pytest

import wenet_rt
from conftest import DEMO, EXAMPLES, ROOT, read_wav_int16, run_cli

PIECE = 2731  # samples per accept_waveform call: unrelated to the chunk size on purpose


@pytest.fixture(scope="session")
def cli_streaming_text():
    """`wenet-rt transcribe models/demo examples/*.wav --streaming` on CPU: {key: text}."""
    out = run_cli("transcribe", DEMO, *EXAMPLES, "--streaming", "--device", "cpu")
    return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.fixture(scope="session")
def srec():
    return wenet_rt.StreamingRecognizer(DEMO, device="cpu")


def feed(stream, samples, rate=16000, piece=PIECE):
    for i in range(0, samples.size, piece):
        stream.accept_waveform(samples[i:i + piece], rate)


def stream_all(srec, samples, continuous_decoding=True, piece=PIECE):
    """Every result of one stream fed with `samples` in pieces."""
    with srec.stream(continuous_decoding=continuous_decoding) as s:
        feed(s, samples, piece=piece)
        s.finish()
        results = list(s)
        assert s.done and s.error == ""
    return results


def joined(finals):
    text = ""
    for r in finals:
        text = wenet_rt.streaming.append_text(text, r.text)
    return text


def test_append_text_joins_as_the_command_line():
    """The C++ joiner (decode/text.h): a space between Latin-script texts, none between CJK ones,
    mixed with one, an empty utterance adds nothing."""
    text = ""
    for more in ["hello there", "", "general kenobi"]:
        text = wenet_rt.streaming.append_text(text, more)
    assert text == "hello there general kenobi"
    assert wenet_rt.streaming.append_text("\u4f60\u597d", "\u4e16\u754c") == "\u4f60\u597d\u4e16\u754c"
    assert wenet_rt.streaming.append_text("\u4f60\u597d", "ok") == "\u4f60\u597d ok"


def test_final_texts_match_cli(srec, cli_streaming_text):
    for p in EXAMPLES:
        samples, rate = wenet_rt.read_audio(str(p), srec.sample_rate)
        assert samples.dtype == np.float32 and rate == 16000
        results = stream_all(srec, samples)
        finals = [r for r in results if r.is_final]
        assert joined(finals) == cli_streaming_text[p.stem], p.stem
        assert results[-1].is_final and results[-1].last
        assert [r.last for r in results].count(True) == 1
        for r in finals:
            assert len(r.tokens) == len(r.timestamps) == len(r.word_pieces)
            assert all(0 <= s <= e <= samples.size / 16 + 40 for s, e in r.timestamps)
            assert r.timestamps == sorted(r.timestamps)


def test_demo_reference_text(srec):
    ref = dict(line.split(" ", 1) for line in (DEMO / "examples" / "text").read_text().splitlines())
    for p in EXAMPLES[:2]:
        a, _ = read_wav_int16(p)  # int16 PCM, used as is (the engine scales by 1/32768)
        assert joined([r for r in stream_all(srec, a) if r.is_final]) == ref[p.stem]


def test_partials_arrive_before_the_final(srec):
    samples, _ = wenet_rt.read_audio(str(EXAMPLES[0]), 16000)
    s = srec.stream()
    seen_partial = ""
    for i in range(0, samples.size, 8000):  # half a second at a time, as a client would
        s.accept_waveform(samples[i:i + 8000], 16000)
        assert s.sync(timeout=60)  # every complete chunk decoded
        seen_partial = s.partial or seen_partial
    assert seen_partial, "no partial text while the audio was coming"
    before = s.poll()
    assert before and not any(r.is_final for r in before)
    assert [r.end_ms for r in before] == sorted(r.end_ms for r in before)
    assert before[-1].text == seen_partial
    s.finish()
    rest = list(s)
    assert rest[-1].is_final and rest[-1].last and rest[-1].text
    assert s.done and s.partial == ""
    assert list(s) == [] and s.results(timeout=0) == []


def test_continuous_decoding_gives_several_finals(srec, cli_streaming_text):
    a, _ = wenet_rt.read_audio(str(EXAMPLES[0]), 16000)
    b, _ = wenet_rt.read_audio(str(EXAMPLES[1]), 16000)
    long = np.concatenate([a, np.zeros(2 * 16000, np.float32), b])
    finals = [r for r in stream_all(srec, long) if r.is_final]
    assert len(finals) >= 2
    assert [r.utterance for r in finals] == list(range(len(finals)))
    assert finals[0].text == cli_streaming_text[EXAMPLES[0].stem]
    assert joined(finals[1:]) == cli_streaming_text[EXAMPLES[1].stem]
    assert finals[1].start_ms >= a.size / 16 and finals[1].timestamps[0][0] >= (a.size + 16000) / 16
    # Without continuous decoding the stream ends at the first endpoint; the rest is ignored.
    once = stream_all(srec, long, continuous_decoding=False)
    assert [r.is_final for r in once].count(True) == 1 and once[-1].last
    assert once[-1].text == finals[0].text


def test_nbest(srec):
    a, _ = wenet_rt.read_audio(str(EXAMPLES[2]), 16000)
    with srec.stream(nbest=3) as s:
        s.accept_waveform(a, 16000)
        f = s.finals(timeout=120)
    assert len(f) == 1 and 1 <= len(f[0].nbest) <= 3
    assert f[0].nbest[0].text == f[0].text and f[0].nbest[0].timestamps == f[0].timestamps
    d = f[0].to_dict()
    assert d["is_final"] and d["nbest"][0]["text"] == f[0].text


def test_streams_fed_from_threads(srec, cli_streaming_text):
    got, errors = {}, []

    def client(p):
        try:
            samples, _ = wenet_rt.read_audio(str(p), 16000)
            with srec.stream(continuous_decoding=True) as s:
                for i in range(0, samples.size, 4000):
                    s.accept_waveform(samples[i:i + 4000], 16000)
                    s.poll()  # a client reading partials as it goes
                got[p.stem] = joined(s.finals(timeout=300))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"{p.stem}: {e!r}")

    threads = [threading.Thread(target=client, args=(p,)) for p in EXAMPLES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert errors == []
    assert got == {p.stem: cli_streaming_text[p.stem] for p in EXAMPLES}
    assert srec.stats().max_batch_seen >= 1 and srec.stats().active_streams == 0


def test_module_cli_streaming_matches_cli():
    cli = [json.loads(line) for line in
           run_cli("transcribe", DEMO, *EXAMPLES, "--streaming", "--format", "json").splitlines()]
    p = subprocess.run([sys.executable, "-m", "wenet_rt", "transcribe", str(DEMO), *map(str, EXAMPLES), "--streaming",
                        "--format", "json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert [json.loads(line) for line in p.stdout.splitlines()] == cli
    assert "5 files (0 failed)" in p.stderr


# --- bad input -----------------------------------------------------------------------------------------

def test_bad_input_raises(srec):
    s = srec.stream()
    with pytest.raises(wenet_rt.Error, match="expected 16000 Hz"):
        s.accept_waveform(np.zeros(1600, np.float32), 8000)
    with pytest.raises(ValueError, match="1-D"):
        s.accept_waveform(np.zeros((2, 1600), np.float32), 16000)
    with pytest.raises(ValueError, match="float64"):
        s.accept_waveform(np.zeros(1600), 16000)
    with pytest.raises(TypeError, match="numpy array"):
        s.accept_waveform([0.0] * 1600, 16000)
    with pytest.raises(TypeError, match="sample_rate"):
        s.accept_waveform(np.zeros(1600, np.float32), 16000.0)
    s.accept_waveform(np.zeros(3200, np.float32)[::2], 16000)  # strided: copied, accepted
    s.finish()
    with pytest.raises(wenet_rt.Error, match="input_finished"):
        s.accept_waveform(np.zeros(1600, np.float32), 16000)
    assert [r.is_final for r in s] == [True]
    s.close()
    with pytest.raises(wenet_rt.Error, match="closed"):
        s.poll()
    with pytest.raises(ValueError, match="nbest"):
        srec.stream(nbest=11)


def test_bad_recognizer_options():
    with pytest.raises(wenet_rt.Error, match="not trained for streaming"):
        wenet_rt.StreamingRecognizer(ROOT / "tests" / "data" / "goldens" / "conformer_layernorm")
    with pytest.raises(ValueError, match="does not exist"):
        wenet_rt.StreamingRecognizer("/no/such/dir")
    with pytest.raises(ValueError, match="chunk_size"):
        wenet_rt.StreamingRecognizer(DEMO, chunk_size=0)
    with pytest.raises(ValueError, match="device"):
        wenet_rt.StreamingRecognizer(DEMO, device="tpu")


def test_max_streams_and_close():
    rec = wenet_rt.StreamingRecognizer(DEMO, max_streams=1, threads=1)
    s = rec.stream()
    with pytest.raises(wenet_rt.Error, match="in use"):
        rec.stream()
    s.accept_waveform(np.zeros(16000, np.float32), 16000)
    rec.close()  # open streams end with an error
    with pytest.raises(wenet_rt.Error, match="destroyed"):
        list(s)
    with pytest.raises(wenet_rt.Error, match="closed"):
        rec.stream()


def test_int8_streaming_matches_cli(cli_streaming_text):
    # CPU dynamic INT8 (--precision int8): the demo examples come out as with FP32.
    rec = wenet_rt.StreamingRecognizer(DEMO, precision="int8")
    assert rec.engine_config.max_streams > 0 and rec.engine_config.precision == "int8"
    for p in EXAMPLES[:2]:
        samples, _ = wenet_rt.read_audio(str(p), 16000)
        assert joined([r for r in stream_all(rec, samples) if r.is_final]) == cli_streaming_text[p.stem]
    with pytest.raises(ValueError, match="precision"):
        wenet_rt.StreamingRecognizer(DEMO, precision="int4")


def test_cuda_streaming_matches_cli(cli_streaming_text):
    """The same streams on the GPU (FP16): the final texts of the CPU command line."""
    if not wenet_rt.HAS_CUDA:
        pytest.skip("built without CUDA")
    try:
        cuda = wenet_rt.StreamingRecognizer(DEMO, device="cuda", precision="fp16")
    except wenet_rt.Error as e:
        pytest.skip(f"no usable GPU: {e}")
    for p in EXAMPLES:
        samples, _ = wenet_rt.read_audio(str(p), cuda.sample_rate)
        finals = [r for r in stream_all(cuda, samples) if r.is_final]
        assert joined(finals) == cli_streaming_text[p.stem], p.stem
