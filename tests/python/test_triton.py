"""python -m wenet_rt.triton served on CPU, called with tritonclient over HTTP and gRPC."""
import concurrent.futures as cf
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import DEMO, EXAMPLES, read_wav_int16

pytest.importorskip("pytriton", reason="nvidia-pytriton is not installed (pip install '.[triton]')")
httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")

MODEL = "wenet_rt"
STREAMING = "wenet_rt_streaming"


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    http_port, grpc_port, metrics_port = free_ports(3)
    log = tmp_path_factory.mktemp("triton") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wenet_rt.triton", str(DEMO), "--instances", "2", "--threads", "1",
             "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port), "--exit-timeout-secs", "3"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    client = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}")
    deadline = time.time() + 180
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the Triton server exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            try:
                if client.is_server_ready() and client.is_model_ready(MODEL) and client.is_model_ready(STREAMING):
                    break
            except Exception:
                pass
            if time.time() > deadline:
                pytest.fail(f"the Triton server was not ready in 180 s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield {"http": f"127.0.0.1:{http_port}", "grpc": f"127.0.0.1:{grpc_port}"}
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wav_inputs(mod, path):
    data = np.array([[path.read_bytes()]], dtype=np.object_)
    inp = mod.InferInput("WAV", [1, 1], "BYTES")
    inp.set_data_from_numpy(data)
    return [inp]


def pcm_inputs(mod, path):
    a, rate = read_wav_int16(path)
    pcm = mod.InferInput("PCM", [1, a.size], "FP32")
    pcm.set_data_from_numpy((a.astype(np.float32) / 32768)[None])
    sr = mod.InferInput("SAMPLE_RATE", [1, 1], "INT32")
    sr.set_data_from_numpy(np.array([[rate]], dtype=np.int32))
    return [pcm, sr]


def decode(res):
    text = res.as_numpy("TEXT")[0, 0].decode("utf-8")
    tokens = [int(t) for t in res.as_numpy("TOKENS")[0] if t >= 0]
    stamps = [tuple(int(v) for v in s) for s in res.as_numpy("TIMESTAMPS")[0] if s[0] >= 0]
    return text, tokens, stamps, res.as_numpy("ERROR")[0, 0].decode()


@pytest.fixture(scope="module")
def expected(demo_rec):
    return {p.stem: demo_rec.transcribe(p) for p in EXAMPLES}


def check(p, got, expected, cli_demo_text, same_batch=True):
    text, tokens, stamps, error = got
    assert error == ""
    assert text == cli_demo_text[p.stem]
    assert tokens == expected[p.stem].tokens
    assert len(stamps) == len(tokens)
    if same_batch:  # batched with others, a conformer's last frames see padding (WeNet's semantics): peaks may move
        assert stamps == expected[p.stem].timestamps


def test_http_wav(server, expected, cli_demo_text):
    c = httpclient.InferenceServerClient(server["http"])
    for p in EXAMPLES:
        check(p, decode(c.infer(MODEL, wav_inputs(httpclient, p))), expected, cli_demo_text)


def test_grpc_pcm(server, expected, cli_demo_text):
    c = grpcclient.InferenceServerClient(server["grpc"])
    for p in EXAMPLES:
        check(p, decode(c.infer(MODEL, pcm_inputs(grpcclient, p))), expected, cli_demo_text)


def test_concurrent_requests_batched(server, expected, cli_demo_text):
    # Many requests at once over both protocols: Triton's dynamic batcher gathers them.
    def one(i):
        p = EXAMPLES[i % len(EXAMPLES)]
        if i % 2:
            c = grpcclient.InferenceServerClient(server["grpc"])
            return p, decode(c.infer(MODEL, wav_inputs(grpcclient, p)))
        c = httpclient.InferenceServerClient(server["http"])
        return p, decode(c.infer(MODEL, wav_inputs(httpclient, p)))

    with cf.ThreadPoolExecutor(8) as pool:
        for p, got in pool.map(one, range(20)):
            check(p, got, expected, cli_demo_text, same_batch=False)


def test_bad_audio_reported(server):
    c = httpclient.InferenceServerClient(server["http"])
    inp = httpclient.InferInput("WAV", [1, 1], "BYTES")
    inp.set_data_from_numpy(np.array([[b"RIFF nonsense"]], dtype=np.object_))
    text, tokens, _, error = decode(c.infer(MODEL, [inp]))
    assert text == "" and tokens == [] and error


# --- the streaming model: one engine stream per SEQUENCE_ID ------------------------------------------


@pytest.fixture(scope="module")
def cli_streaming_text():
    from conftest import run_cli
    out = run_cli("transcribe", DEMO, *EXAMPLES, "--streaming", "--device", "cpu")
    return dict(line.split(" ", 1) for line in out.splitlines())


def stream_request(mod, seq_id, pcm=None, start=False, end=False):
    def scalar(name, value, dtype, triton_type):
        t = mod.InferInput(name, [1, 1], triton_type)
        t.set_data_from_numpy(np.array([[value]], dtype=dtype))
        return t

    inputs = [scalar("SEQUENCE_ID", seq_id, np.uint64, "UINT64"), scalar("START", start, np.bool_, "BOOL"),
              scalar("END", end, np.bool_, "BOOL")]
    if pcm is not None:
        t = mod.InferInput("PCM", [1, pcm.size], "FP32")
        t.set_data_from_numpy(pcm[None])
        inputs += [t, scalar("SAMPLE_RATE", 16000, np.int32, "INT32")]
    return inputs


def stream_file(mod, client, seq_id, path, piece=10240):
    """Sends `path` in pieces (the first with START, then END alone); returns the responses."""
    a, _ = read_wav_int16(path)
    pcm = a.astype(np.float32) / 32768
    out = []
    for i in range(0, pcm.size, piece):
        out.append(client.infer(STREAMING, stream_request(mod, seq_id, pcm[i:i + piece], start=i == 0)))
    out.append(client.infer(STREAMING, stream_request(mod, seq_id, end=True)))
    return out


def text_of(res):
    return res.as_numpy("TEXT")[0, 0].decode("utf-8")


def check_stream(responses, expected_text):
    for r in responses:
        assert r.as_numpy("ERROR")[0, 0] == b""
    assert [bool(r.as_numpy("IS_FINAL")[0, 0]) for r in responses] == [False] * (len(responses) - 1) + [True]
    assert any(text_of(r) for r in responses[:-1]), "no partial text before END"
    last = responses[-1]
    assert text_of(last) == expected_text
    assert last.as_numpy("PARTIAL")[0, 0] == b""
    tokens = [int(t) for t in last.as_numpy("TOKENS")[0] if t >= 0]
    stamps = [tuple(int(v) for v in s) for s in last.as_numpy("TIMESTAMPS")[0] if s[0] >= 0]
    assert len(tokens) == len(stamps) > 0 and stamps == sorted(stamps)


def test_streaming_http(server, cli_streaming_text):
    c = httpclient.InferenceServerClient(server["http"])
    assert c.is_model_ready(STREAMING)
    for n, p in enumerate(EXAMPLES):
        check_stream(stream_file(httpclient, c, 1000 + n, p), cli_streaming_text[p.stem])


def test_streaming_grpc_concurrent(server, cli_streaming_text):
    def one(n):
        p = EXAMPLES[n % len(EXAMPLES)]
        c = grpcclient.InferenceServerClient(server["grpc"])
        return p, stream_file(grpcclient, c, 2000 + n, p, piece=6400)

    with cf.ThreadPoolExecutor(5) as pool:
        for p, responses in pool.map(one, range(5)):
            check_stream(responses, cli_streaming_text[p.stem])


def test_streaming_errors(server):
    c = httpclient.InferenceServerClient(server["http"])
    r = c.infer(STREAMING, stream_request(httpclient, 77, np.zeros(1600, np.float32)))  # no START
    assert b"unknown sequence 77" in r.as_numpy("ERROR")[0, 0]
    r = c.infer(STREAMING, stream_request(httpclient, 78, np.zeros(1600, np.float32), start=True, end=True))
    assert r.as_numpy("ERROR")[0, 0] == b"" and bool(r.as_numpy("IS_FINAL")[0, 0])
    r = c.infer(STREAMING, stream_request(httpclient, 78, end=True))  # closed at END
    assert b"unknown sequence 78" in r.as_numpy("ERROR")[0, 0]


class _FakeTriton:
    """Stands in for pytriton's Triton: bind() fails as PyTriton's handshake race does, `fails` times."""
    starts = 0

    def __init__(self, message, fails):
        self.message, self.fails = message, fails

    def __call__(self, config):
        return self

    def __enter__(self):
        _FakeTriton.starts += 1
        return self

    def __exit__(self, *exc):
        return False

    def bind(self, **kwargs):
        if _FakeTriton.starts <= self.fails:
            raise RuntimeError(self.message)

    def serve(self):
        pass


RACE = ("load failed for model 'wenet_rt_streaming': ... in get_config_from_handshake_server\n"
        "    sock.connect(socket_path.as_posix())\nConnectionRefusedError: [Errno 111] Connection refused")


@pytest.mark.parametrize("message, fails, starts, raises", [
    (RACE, 1, 2, False),              # the race once: started again, then serving
    (RACE, 3, 3, True),               # every attempt: the error after the last one
    ("some other failure", 1, 1, True),  # anything else: at once
])
def test_start_again_after_pytriton_handshake_race(monkeypatch, message, fails, starts, raises):
    import pytriton.triton
    import wenet_rt.triton
    _FakeTriton.starts = 0
    monkeypatch.setattr(pytriton.triton, "Triton", _FakeTriton(message, fails))
    if raises:
        with pytest.raises(RuntimeError, match=message.splitlines()[0][:20]):
            wenet_rt.triton.serve(DEMO, streaming="off", threads=1)
    else:
        wenet_rt.triton.serve(DEMO, streaming="off", threads=1)
    assert _FakeTriton.starts == starts
