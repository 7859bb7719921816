#include "server/protocol.h"

#include <nlohmann/json.hpp>

namespace wenet_rt::server {

using ojson = nlohmann::ordered_json;

std::variant<StartSignal, EndSignal, ProtocolError> parse_client_message(const std::string& text) {
  ojson v;
  try {
    v = ojson::parse(text);
  } catch (const std::exception& e) {
    return ProtocolError{std::string("bad JSON in text message: ") + e.what()};
  }
  if (!v.is_object()) return ProtocolError{"wrong protocol: expected a JSON object with a \"signal\""};
  const auto s = v.find("signal");
  if (s == v.end()) return ProtocolError{"wrong message header: no \"signal\" in the text message"};
  if (!s->is_string()) return ProtocolError{"wrong message header: \"signal\" must be a string"};
  const std::string signal = s->get<std::string>();
  if (signal == "end") return EndSignal{};
  if (signal != "start") return ProtocolError{"unexpected signal type '" + signal + "': expected start or end"};
  StartSignal start;
  if (const auto n = v.find("nbest"); n != v.end()) {
    if (!n->is_number_integer()) return ProtocolError{"integer is expected for nbest option"};
    const auto nbest = n->get<long long>();
    if (nbest < 1 || nbest > 100) return ProtocolError{"nbest must be 1..100, got " + std::to_string(nbest)};
    start.options.nbest = int(nbest);
  }
  if (const auto c = v.find("continuous_decoding"); c != v.end()) {
    if (!c->is_boolean()) return ProtocolError{"boolean true or false is expected for continuous_decoding option"};
    start.options.continuous_decoding = c->get<bool>();
  }
  return start;
}

std::string server_ready_message() { return ojson{{"status", "ok"}, {"type", "server_ready"}}.dump(); }
std::string speech_end_message() { return ojson{{"status", "ok"}, {"type", "speech_end"}}.dump(); }
std::string failed_message(const std::string& why) {
  return ojson{{"status", "failed"}, {"message", why}}.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

std::string result_message(const StreamResult& result, int nbest) {
  ojson paths = ojson::array();
  for (const Sentence& s : result.nbest) {
    if (int(paths.size()) >= nbest) break;
    ojson path = {{"sentence", s.text}};
    if (result.is_final) {
      ojson pieces = ojson::array();
      for (const WordPiece& p : s.word_pieces) pieces.push_back({{"word", p.word}, {"start", p.start_ms}, {"end", p.end_ms}});
      path["word_pieces"] = std::move(pieces);
    }
    paths.push_back(std::move(path));
  }
  const auto replace = ojson::error_handler_t::replace;  // invalid UTF-8 from a model never throws
  return ojson{{"status", "ok"},
               {"type", result.is_final ? "final_result" : "partial_result"},
               {"nbest", paths.dump(-1, ' ', false, replace)}}
      .dump(-1, ' ', false, replace);
}

}  // namespace wenet_rt::server
