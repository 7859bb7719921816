// WeNet's runtime WebSocket protocol (runtime/core/websocket/websocket_server.cc), message by
// message, apart from any transport: what the server makes of a client's text message, and the
// JSON it sends back. Key order and nesting are WeNet's: {"status","type","nbest"} with `nbest` a
// JSON array serialized into a string; word_pieces only in final results.
#pragma once

#include <string>
#include <variant>

#include "wenet_rt/streaming.h"

namespace wenet_rt::server {

struct StartSignal {
  StreamOptions options;
};
struct EndSignal {};
struct ProtocolError {
  std::string message;
};

// A client text message: {"signal":"start","nbest":N,"continuous_decoding":B} or {"signal":"end"}.
// Anything else (bad JSON, no signal, unknown signal, wrong option types) is a ProtocolError
// naming the problem.
std::variant<StartSignal, EndSignal, ProtocolError> parse_client_message(const std::string& text);

std::string server_ready_message();                  // {"status":"ok","type":"server_ready"}
std::string speech_end_message();                    // {"status":"ok","type":"speech_end"}
std::string failed_message(const std::string& why);  // {"status":"failed","message":why}
// partial_result (sentences only) or final_result (sentences with word_pieces), at most nbest.
std::string result_message(const StreamResult& result, int nbest);

}  // namespace wenet_rt::server
