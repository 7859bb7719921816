#include "server/http_api.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/error.h"

namespace wenet_rt::server {

using ojson = nlohmann::ordered_json;
constexpr auto kReplace = ojson::error_handler_t::replace;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

// The value of `key=` in a header's parameters (quoted or not), or "".
std::string header_param(const std::string& header, const std::string& key) {
  const std::string h = lower(header);
  size_t pos = 0;
  while ((pos = h.find(key + "=", pos)) != std::string::npos) {
    if (pos == 0 || h[pos - 1] == ';' || h[pos - 1] == ' ' || h[pos - 1] == '\t') {
      size_t v = pos + key.size() + 1;
      if (v < header.size() && header[v] == '"') {
        const size_t end = header.find('"', v + 1);
        return header.substr(v + 1, end == std::string::npos ? std::string::npos : end - v - 1);
      }
      const size_t end = header.find(';', v);
      return trim(header.substr(v, end == std::string::npos ? std::string::npos : end - v));
    }
    pos += key.size();
  }
  return "";
}

bool is_separator(const std::string& piece) { return piece == "\xE2\x96\x81"; }
bool starts_word(const std::string& piece) { return piece.rfind("\xE2\x96\x81", 0) == 0; }

std::string timestamp(double s, char decimal) {
  const long long ms = std::llround(std::max(0.0, s) * 1000);
  return fmt::format("{:02}:{:02}:{:02}{}{:03}", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, decimal, ms % 1000);
}

}  // namespace

std::vector<FormPart> parse_multipart(const std::string& content_type, const std::string& body) {
  if (lower(content_type).rfind("multipart/form-data", 0) != 0)
    fail("expected Content-Type multipart/form-data, got '{}'", content_type);
  const std::string boundary = header_param(content_type, "boundary");
  if (boundary.empty()) fail("multipart/form-data without a boundary");
  const std::string delim = "--" + boundary;
  std::vector<FormPart> parts;
  size_t pos = body.find(delim);
  if (pos == std::string::npos) fail("multipart body: no boundary '{}' found", boundary);
  for (;;) {
    pos += delim.size();
    if (body.compare(pos, 2, "--") == 0) return parts;  // the closing delimiter
    if (body.compare(pos, 2, "\r\n") != 0) fail("multipart body: expected CRLF after a boundary");
    pos += 2;
    const size_t headers_end = body.find("\r\n\r\n", pos);
    if (headers_end == std::string::npos) fail("multipart body: a part's headers do not end");
    FormPart part;
    size_t line = pos;
    while (line < headers_end) {
      size_t eol = body.find("\r\n", line);
      if (eol == std::string::npos || eol > headers_end) eol = headers_end;
      const std::string h = body.substr(line, eol - line);
      const size_t colon = h.find(':');
      if (colon != std::string::npos) {
        const std::string name = lower(trim(h.substr(0, colon))), value = trim(h.substr(colon + 1));
        if (name == "content-disposition") {
          part.name = header_param(value, "name");
          part.filename = header_param(value, "filename");
        } else if (name == "content-type") {
          part.content_type = value;
        }
      }
      line = eol + 2;
    }
    const size_t data = headers_end + 4;
    const size_t next = body.find("\r\n" + delim, data);
    if (next == std::string::npos) fail("multipart body: part '{}' is not closed by the boundary", part.name);
    part.data = body.substr(data, next - data);
    parts.push_back(std::move(part));
    pos = next + 2;
  }
}

std::vector<WordPiece> words_of(const std::vector<WordPiece>& pieces) {
  const bool bpe = std::any_of(pieces.begin(), pieces.end(), [](const WordPiece& p) {
    return p.word.find("\xE2\x96\x81") != std::string::npos;
  });
  std::vector<WordPiece> words;
  bool open = false;
  for (const WordPiece& p : pieces) {
    if (!bpe) {
      words.push_back(p);
      continue;
    }
    if (is_separator(p.word)) {
      open = false;
      continue;
    }
    const bool starts = starts_word(p.word);
    const std::string text = starts ? p.word.substr(3) : p.word;
    if (!open || starts) {
      words.push_back({text, p.start_ms, p.end_ms});
      open = true;
    } else {
      words.back().word += text;
      words.back().end_ms = p.end_ms;
    }
  }
  return words;
}

HttpReply openai_error(int status, const std::string& message, const std::string& type, const std::string& param) {
  ojson e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  return {status, "application/json", ojson{{"error", e}}.dump(-1, ' ', false, kReplace)};
}

TranscriptionRequest parse_transcription_form(const std::vector<FormPart>& parts) {
  TranscriptionRequest req;
  bool have_file = false;
  for (const FormPart& p : parts) {
    if (p.name == "file") {
      req.audio = p.data;
      req.filename = p.filename.empty() ? "file" : p.filename;
      have_file = true;
    } else if (p.name == "response_format") {
      req.response_format = trim(p.data);
    } else if (p.name == "model") {
      req.model = p.data;
    } else if (p.name == "language") {
      req.language = p.data;
    } else if (p.name == "prompt") {
      req.prompt = p.data;
    }  // temperature, timestamp_granularities[], ...: accepted, not used
  }
  if (!have_file) fail("missing the 'file' field (the audio to transcribe)");
  if (req.audio.empty()) fail("the 'file' field is empty");
  static const char* formats[] = {"json", "text", "verbose_json", "srt", "vtt"};
  if (std::none_of(std::begin(formats), std::end(formats), [&](const char* f) { return req.response_format == f; }))
    fail("response_format '{}' is not supported: expected json, text, verbose_json, srt or vtt", req.response_format);
  return req;
}

HttpReply openai_transcription_reply(const RecognitionResult& r, const std::string& format) {
  const double end_s = r.word_pieces.empty() ? r.duration_s : std::min(r.duration_s, r.word_pieces.back().end_ms / 1e3);
  if (format == "text") return {200, "text/plain; charset=utf-8", r.text + "\n"};
  if (format == "srt") {
    return {200, "text/plain; charset=utf-8",
            fmt::format("1\n{} --> {}\n{}\n\n", timestamp(0, ','), timestamp(r.duration_s, ','), r.text)};
  }
  if (format == "vtt") {
    return {200, "text/vtt; charset=utf-8",
            fmt::format("WEBVTT\n\n{} --> {}\n{}\n\n", timestamp(0, '.'), timestamp(r.duration_s, '.'), r.text)};
  }
  if (format != "verbose_json") return {200, "application/json", ojson{{"text", r.text}}.dump(-1, ' ', false, kReplace)};
  ojson words = ojson::array();
  for (const WordPiece& w : words_of(r.word_pieces))
    words.push_back({{"word", w.word}, {"start", w.start_ms / 1e3}, {"end", w.end_ms / 1e3}});
  const double start_s = r.word_pieces.empty() ? 0.0 : r.word_pieces.front().start_ms / 1e3;
  ojson segment = {{"id", 0},
                   {"seek", 0},
                   {"start", std::min(start_s, end_s)},
                   {"end", std::max(end_s, 0.0)},
                   {"text", r.text},
                   {"tokens", r.tokens},
                   {"temperature", 0.0},
                   {"avg_logprob", r.tokens.empty() ? 0.0 : r.score / double(r.tokens.size())},
                   {"compression_ratio", 1.0},
                   {"no_speech_prob", r.text.empty() ? 1.0 : 0.0}};
  ojson body = {{"task", "transcribe"},  {"language", "english"}, {"duration", r.duration_s},
                {"text", r.text},        {"segments", ojson::array({segment})}, {"words", words}};
  return {200, "application/json", body.dump(-1, ' ', false, kReplace)};
}

HttpReply transcribe_reply(const RecognitionResult& r) {
  ojson pieces = ojson::array();
  for (const WordPiece& p : r.word_pieces) pieces.push_back({{"word", p.word}, {"start", p.start_ms}, {"end", p.end_ms}});
  ojson body = {{"text", r.text}, {"tokens", r.tokens}, {"duration", r.duration_s}, {"score", r.score},
                {"word_pieces", pieces}};
  if (r.segments > 1) body["segments"] = r.segments;
  return {200, "application/json", body.dump(-1, ' ', false, kReplace)};
}

}  // namespace wenet_rt::server
