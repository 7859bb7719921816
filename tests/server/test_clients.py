#!/usr/bin/env python3
"""`wenet-rt serve` as a process, driven by real clients (ctest: ServerClients).

  the `openai` package  POST /v1/audio/transcriptions: json, text, verbose_json, a bad upload
  `websockets`          WeNet's protocol as WeNet's own python client speaks it (0.5 s chunks), on the
                        streaming engine (the demo is a U2++ model): partial results, then the final
  loadtest              WebSocket clients at real-time pace and HTTP ones: every text equals
                        `wenet-rt transcribe --streaming` (resp. `transcribe`) of the same file
  headless Chromium     the page at / with a fake microphone playing a WAV: the final text shows
  SIGTERM               a stream in flight still gets its final result; the process exits 0

Usage: test_clients.py WENET_RT_BIN   (run from the source root; exit 77 = skipped)
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import wave

SKIP = 77
BIN = sys.argv[1]
MODEL = "models/demo"
EXAMPLES = MODEL + "/examples"
EXPECTED = dict(line.strip().split(" ", 1) for line in open(EXAMPLES + "/text") if line.strip())

try:
    import openai
    import websockets.sync.client as ws_client
except ImportError as e:  # CI installs them (.ci/run)
    print(f"SKIP: {e} (pip install openai websockets)")
    sys.exit(SKIP)


def start_server(*extra):
    proc = subprocess.Popen([BIN, "serve", MODEL, "--host", "127.0.0.1", "--port", "0", "--threads", "1", *extra],
                            stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    m = re.search(r"listening on http://[0-9.]+:(\d+)/", line)
    assert m, f"no listening line: {line!r}"
    return proc, int(m.group(1))


def wav_pcm(path):
    with wave.open(path, "rb") as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.readframes(w.getnframes())


def wenet_stream(port, pcm, on_half=None):
    """WeNet's python client: start, 0.5 s binary chunks, end; the final sentences and the message types."""
    with ws_client.connect(f"ws://127.0.0.1:{port}/") as ws:
        ws.send(json.dumps({"signal": "start", "nbest": 1, "continuous_decoding": False}))
        assert json.loads(ws.recv()) == {"status": "ok", "type": "server_ready"}
        step = 16000  # 0.5 s of 16-bit samples
        for i in range(0, len(pcm), step):
            if on_half and i >= len(pcm) // 2 and on_half:
                on_half()
                on_half = None
            ws.send(pcm[i:i + step])
        ws.send(json.dumps({"signal": "end"}))
        finals, types = [], []
        while True:
            msg = json.loads(ws.recv(timeout=60))
            assert msg["status"] == "ok", msg
            types.append(msg["type"])
            if msg["type"] == "final_result":
                nbest = json.loads(msg["nbest"])
                assert all("word_pieces" in n for n in nbest), nbest
                finals.append(nbest[0]["sentence"])
            if msg["type"] == "speech_end":
                return " ".join(finals), types


def test_openai(port):
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="not-needed")
    for key in ["test000001", "test000005"]:
        with open(f"{EXAMPLES}/{key}.wav", "rb") as f:
            r = client.audio.transcriptions.create(model="whisper-1", file=f, language="en", prompt="ignored")
        assert r.text == EXPECTED[key], (r.text, EXPECTED[key])
    with open(f"{EXAMPLES}/test000002.wav", "rb") as f:
        text = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")
    assert text.strip() == EXPECTED["test000002"], text
    with open(f"{EXAMPLES}/test000003.wav", "rb") as f:
        v = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json",
                                               timestamp_granularities=["word", "segment"])
    assert v.text == EXPECTED["test000003"]
    assert [w.word for w in v.words] == EXPECTED["test000003"].split(), v.words
    assert all(w.start <= w.end for w in v.words) and v.words[-1].end <= v.duration + 0.05
    assert v.segments[0].text == v.text and v.duration > 1
    try:
        client.audio.transcriptions.create(model="whisper-1", file=("junk.wav", b"definitely not audio" * 10))
        raise AssertionError("junk was accepted")
    except openai.BadRequestError as e:
        assert "cannot decode" in str(e), e
    print("openai client: ok")


def test_raw_and_websocket(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/transcribe", data=open(f"{EXAMPLES}/test000000.wav", "rb").read(),
                                 headers={"Content-Type": "audio/wav"})
    body = json.loads(urllib.request.urlopen(req).read())
    assert body["text"] == EXPECTED["test000000"] and len(body["word_pieces"]) == len(body["tokens"]), body
    text, types = wenet_stream(port, wav_pcm(f"{EXAMPLES}/test000001.wav"))
    assert text == EXPECTED["test000001"], text
    assert types[-2:] == ["final_result", "speech_end"], types
    assert "partial_result" in types, types  # the streaming engine's partials
    print("/v1/transcribe and WeNet protocol: ok")


def cdp_evaluate(ws, expression, ids=[0]):
    ids[0] += 1
    ws.send(json.dumps({"id": ids[0], "method": "Runtime.evaluate", "params": {"expression": expression, "returnByValue": True}}))
    while True:
        msg = json.loads(ws.recv(timeout=30))
        if msg.get("id") == ids[0]:
            return msg["result"]["result"].get("value")


def test_browser(port):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        print("browser: SKIPPED (no chromium; apt-get install chromium)")
        return
    key = "test000005"
    tmp = tempfile.mkdtemp(prefix="wenet-rt-browser-")
    # The fake microphone loops its file: speech, then enough silence to stop in.
    audio = os.path.join(tmp, "mic.wav")
    pcm = wav_pcm(f"{EXAMPLES}/{key}.wav")
    with wave.open(audio, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(b"\0" * 16000 + pcm + b"\0" * 16000 * 6)
    seconds = 1 + len(pcm) / 32000 + 1.5
    profile = os.path.join(tmp, "profile")
    url = f"http://127.0.0.1:{port}/?autostart=1&seconds={seconds:.2f}"
    proc = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                             f"--use-file-for-fake-audio-capture={audio}", "--autoplay-policy=no-user-gesture-required",
                             "--remote-debugging-port=0", f"--user-data-dir={profile}", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        for _ in range(300):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.1)
        devtools = int(open(port_file).read().split()[0])
        pages = [t for t in json.loads(urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list").read())
                 if t["type"] == "page"]
        with ws_client.connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as ws:
            deadline = time.time() + seconds + 60
            state = None
            while time.time() < deadline:
                state = cdp_evaluate(ws, "[document.body.dataset.done || '', document.getElementById('final').textContent,"
                                         " document.getElementById('status').textContent]")
                if state and state[0] == "1":
                    break
                time.sleep(0.25)
        assert state and state[0] == "1", f"the page did not finish: {state}"
        assert state[1].strip() == EXPECTED[key], f"page shows {state[1]!r}, expected {EXPECTED[key]!r}"
        print(f"browser page: ok ({state[1]!r})")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def test_loadtest(port):
    tmp = tempfile.mkdtemp(prefix="wenet-rt-load-")
    try:
        scp, expect = os.path.join(tmp, "wav.scp"), os.path.join(tmp, "text")
        with open(scp, "w") as f:
            for key in sorted(EXPECTED):
                f.write(f"{key} {os.path.abspath(EXAMPLES)}/{key}.wav\n")
        # The reference: what `transcribe --streaming` (continuous decoding, as loadtest's default) gives.
        out = subprocess.run([BIN, "transcribe", MODEL, "--streaming", "--wav-scp", scp, "--output", expect],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        reference = dict(line.rstrip("\n").split(" ", 1) for line in open(expect) if line.strip())
        assert reference == EXPECTED, reference
        for args in (["--streams", "5"], ["--http", "3", "--duration", "2"]):
            report = os.path.join(tmp, "report.json")
            out = subprocess.run([BIN, "loadtest", f"ws://127.0.0.1:{port}", "--wav-scp", scp, "--expect", expect,
                                  "--json", report, *args], capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, out.stdout + out.stderr
            r = json.load(open(report))
            assert r["errors"] == 0 and r["mismatches"] == 0 and r["completed"] >= 3, r
            if "--streams" in args:
                assert r["completed"] == 5 and r["partial"]["count"] >= 5, r
            else:  # the server's own account of where the requests' time went (/metrics)
                m = r["server_means_ms"]
                assert m["batch_size"] >= 1 and m["engine_run"] > 0 and m["read_to_answer"] > 0 and m["read"] >= 0, m
        print("loadtest (websocket and http, every text checked): ok")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_sigterm_drains():
    proc, port = start_server("--drain-timeout", "30")
    try:
        pcm = wav_pcm(f"{EXAMPLES}/test000002.wav")
        text, _ = wenet_stream(port, pcm, on_half=lambda: proc.send_signal(signal.SIGTERM))
        assert text == EXPECTED["test000002"], text
        assert proc.wait(timeout=20) == 0
        print("SIGTERM drains the stream in flight, exit 0: ok")
    finally:
        if proc.poll() is None:
            proc.kill()


def main():
    proc, port = start_server("--max-request-seconds", "30")
    try:
        test_openai(port)
        test_raw_and_websocket(port)
        test_browser(port)
        test_loadtest(port)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        assert re.search(r"^wenet_rt_transcriptions_total [1-9]", metrics, re.M), metrics
        assert re.search(r'^wenet_rt_audio_seconds_total\{path="http"\} [1-9]', metrics, re.M), metrics
        assert re.search(r'^wenet_rt_audio_seconds_total\{path="websocket"\} [1-9]', metrics, re.M), metrics
        assert re.search(r"^wenet_rt_stream_chunks_total [1-9]", metrics, re.M), metrics
        assert re.search(r"^wenet_rt_engine_streams 0$", metrics, re.M), metrics
        assert proc.poll() is None, "the server died"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    test_sigterm_drains()


if __name__ == "__main__":
    main()
