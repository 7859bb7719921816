// GET /: a small page that streams the microphone to the WebSocket endpoint and shows the live
// partial and final text. Plain JavaScript: Web Audio capture, resampling to the model's rate,
// 16-bit PCM frames, WeNet's protocol. `?autostart=1&seconds=S` starts at once and sends `end`
// after S seconds (for tests and kiosks).
#pragma once

#include <string>

namespace wenet_rt::server {

const std::string& index_html();

}  // namespace wenet_rt::server
