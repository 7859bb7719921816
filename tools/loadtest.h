// `wenet-rt loadtest`: many WebSocket (WeNet protocol) or HTTP clients against a running server.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace wenet_rt {

struct LoadtestOptions {
  std::string url;           // ws://host:port
  std::string wav_scp;       // key path
  std::string expect;        // key text (optional): each final text must equal it
  int streams = 1;           // WebSocket clients at once
  int http = 0;              // HTTP clients at once (instead of WebSocket ones)
  double duration = 0;       // seconds; 0 = each file once per client
  double chunk_ms = 100;     // audio per binary message
  double pace = 1.0;         // 1 = real time
  bool continuous = true;    // as `transcribe --streaming`, whose text --expect usually holds
  int chunk_size = 16;       // the server's chunk (encoder frames, x4 subsampling): when a partial's audio was complete
  double retry_s = 1.0;      // a client told "server busy" tries again after this (while --duration lasts)
  std::string json;          // write the report as JSON here too
};

void add_loadtest_options(CLI::App& app, LoadtestOptions& o);
int run_loadtest(const LoadtestOptions& o);  // 0 when nothing failed or mismatched

}  // namespace wenet_rt
