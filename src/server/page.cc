#include "server/page.h"

namespace wenet_rt::server {

const std::string& index_html() {
  static const std::string page = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wenet-rt</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  button { font-size: 1rem; padding: .5rem 1.2rem; margin-right: .5rem; }
  #final { font-size: 1.3rem; white-space: pre-wrap; min-height: 2rem; }
  #partial { font-size: 1.3rem; color: #888; min-height: 2rem; }
  #status { color: #555; font-size: .9rem; }
</style>
</head>
<body>
<h1>wenet-rt</h1>
<p>Speak into the microphone: the text appears as you talk (partial in grey, final in black).</p>
<p><button id="start">Start</button><button id="stop" disabled>Stop</button>
<label><input type="checkbox" id="continuous" checked> continuous decoding</label></p>
<div id="final"></div>
<div id="partial"></div>
<p id="status">idle</p>
<script>
"use strict";
const TARGET_RATE = 16000;
const $ = (id) => document.getElementById(id);
let ws = null, ctx = null, source = null, node = null, media = null, finals = [];

function setStatus(s) { $("status").textContent = s; }
function showFinal() { $("final").textContent = finals.filter((t) => t.length).join(" "); }

// Linear-interpolation resampler with a one-pole low-pass when decimating; keeps its phase
// across blocks so a stream of blocks resamples as one signal.
class Resampler {
  constructor(from, to) { this.step = from / to; this.pos = 0; this.prev = 0; this.lp = 0;
    this.alpha = from > to ? Math.min(1, 2 * Math.PI * (to * 0.45) / from) : 1; }
  process(input) {
    const x = new Float32Array(input.length);
    for (let i = 0; i < input.length; i++) { this.lp += this.alpha * (input[i] - this.lp); x[i] = this.lp; }
    const out = [];
    while (this.pos < x.length) {
      const i = Math.floor(this.pos), f = this.pos - i;
      const a = i === 0 ? this.prev : x[i - 1], b = x[i];
      out.push(a + (b - a) * f);
      this.pos += this.step;
    }
    this.pos -= x.length;
    this.prev = x[x.length - 1];
    return out;
  }
}

function toPcm16(samples) {
  const pcm = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    pcm[i] = s < 0 ? s * 32768 : s * 32767;
  }
  return pcm.buffer;
}

async function start(seconds) {
  $("start").disabled = true; $("stop").disabled = false;
  finals = []; showFinal(); $("partial").textContent = "";
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.status !== "ok") { setStatus("failed: " + msg.message); stopAudio(); return; }
    if (msg.type === "server_ready") { setStatus("listening"); startAudio(seconds); }
    else if (msg.type === "partial_result") { $("partial").textContent = JSON.parse(msg.nbest)[0].sentence; }
    else if (msg.type === "final_result") {
      finals.push(JSON.parse(msg.nbest)[0].sentence); showFinal(); $("partial").textContent = "";
    } else if (msg.type === "speech_end") { setStatus("done"); document.body.dataset.done = "1"; }
  };
  ws.onclose = () => { stopAudio(); $("start").disabled = false; $("stop").disabled = true;
    if ($("status").textContent === "listening") setStatus("closed"); };
  ws.onopen = () => ws.send(JSON.stringify({signal: "start", nbest: 1, continuous_decoding: $("continuous").checked}));
}

async function startAudio(seconds) {
  try {
    media = await navigator.mediaDevices.getUserMedia({audio: {channelCount: 1, echoCancellation: false,
                                                               noiseSuppression: false, autoGainControl: false}});
  } catch (e) { setStatus("no microphone: " + e); ws.close(); return; }
  ctx = new AudioContext();
  source = ctx.createMediaStreamSource(media);
  node = ctx.createScriptProcessor(4096, 1, 1);
  const resampler = new Resampler(ctx.sampleRate, TARGET_RATE);
  node.onaudioprocess = (e) => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(toPcm16(resampler.process(e.inputBuffer.getChannelData(0))));
  };
  source.connect(node); node.connect(ctx.destination);
  if (seconds > 0) setTimeout(stop, seconds * 1000);
}

function stopAudio() {
  if (node) { node.disconnect(); node.onaudioprocess = null; node = null; }
  if (source) { source.disconnect(); source = null; }
  if (media) { media.getTracks().forEach((t) => t.stop()); media = null; }
  if (ctx) { ctx.close(); ctx = null; }
}

function stop() {
  stopAudio();
  if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify({signal: "end"})); setStatus("finishing"); }
  $("stop").disabled = true;
}

$("start").onclick = () => start(0);
$("stop").onclick = stop;
const params = new URLSearchParams(location.search);
if (params.get("autostart")) start(parseFloat(params.get("seconds") || "0"));
</script>
</body>
</html>
)HTML";
  return page;
}

}  // namespace wenet_rt::server
