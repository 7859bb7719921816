// The HTTP transcription endpoints apart from any transport: multipart/form-data parsing, and the
// bodies of POST /v1/audio/transcriptions (OpenAI's shapes) and POST /v1/transcribe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "wenet_rt/recognizer.h"

namespace wenet_rt::server {

struct FormPart {
  std::string name, filename, content_type, data;
};

// Parses a multipart/form-data body; `content_type` is the request's header (with the boundary).
// Throws wenet_rt::Error naming what is malformed.
std::vector<FormPart> parse_multipart(const std::string& content_type, const std::string& body);

// Words from word pieces: a piece starting with "▁" starts a word (BPE; "▁" alone only separates);
// without any "▁" in the result (e.g. Chinese characters) each piece is a word.
std::vector<WordPiece> words_of(const std::vector<WordPiece>& pieces);

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// OpenAI's error shape: {"error":{"message","type","param","code"}}.
HttpReply openai_error(int status, const std::string& message, const std::string& type = "invalid_request_error",
                       const std::string& param = "");

// What POST /v1/audio/transcriptions asks for, from its form fields.
struct TranscriptionRequest {
  std::string filename;
  std::string audio;                       // the uploaded file
  std::string response_format = "json";    // json | text | verbose_json | srt | vtt
  std::string model, language, prompt;     // accepted, not used
};
// Throws wenet_rt::Error (a 400 for the client) naming the missing or bad field.
TranscriptionRequest parse_transcription_form(const std::vector<FormPart>& parts);

HttpReply openai_transcription_reply(const RecognitionResult& r, const std::string& response_format);
// POST /v1/transcribe: {"text","tokens","duration","word_pieces":[{"word","start","end"}]} (ms).
HttpReply transcribe_reply(const RecognitionResult& r);

}  // namespace wenet_rt::server
