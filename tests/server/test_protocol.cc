// The transport-free parts of the server: WeNet's protocol messages (byte for byte as WeNet's
// runtime writes them), multipart parsing, words from word pieces, OpenAI's response shapes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "server/http_api.h"
#include "server/protocol.h"

namespace wenet_rt::server {
namespace {

TEST(Protocol, StartSignalWithOptions) {
  const auto m = parse_client_message(R"({"signal":"start","nbest":3,"continuous_decoding":true})");
  ASSERT_TRUE(std::holds_alternative<StartSignal>(m));
  EXPECT_EQ(std::get<StartSignal>(m).options.nbest, 3);
  EXPECT_TRUE(std::get<StartSignal>(m).options.continuous_decoding);
  const auto d = parse_client_message(R"({"signal":"start"})");
  EXPECT_EQ(std::get<StartSignal>(d).options.nbest, 1);
  EXPECT_FALSE(std::get<StartSignal>(d).options.continuous_decoding);
  EXPECT_TRUE(std::holds_alternative<EndSignal>(parse_client_message(R"({"signal":"end"})")));
}

TEST(Protocol, BadMessagesNameTheProblem) {
  auto error = [](const std::string& text) {
    const auto m = parse_client_message(text);
    return std::holds_alternative<ProtocolError>(m) ? std::get<ProtocolError>(m).message : std::string("(accepted)");
  };
  EXPECT_NE(error("{not json").find("bad JSON"), std::string::npos);
  EXPECT_NE(error("[1,2]").find("wrong protocol"), std::string::npos);
  EXPECT_NE(error(R"({"nbest":1})").find("wrong message header"), std::string::npos);
  EXPECT_NE(error(R"({"signal":"pause"})").find("unexpected signal type 'pause'"), std::string::npos);
  EXPECT_NE(error(R"({"signal":"start","nbest":"3"})").find("integer is expected for nbest"), std::string::npos);
  EXPECT_NE(error(R"({"signal":"start","nbest":0})").find("nbest must be"), std::string::npos);
  EXPECT_NE(error(R"({"signal":"start","continuous_decoding":1})").find("boolean"), std::string::npos);
}

TEST(Protocol, MessagesAreWeNetsByteForByte) {
  EXPECT_EQ(server_ready_message(), R"({"status":"ok","type":"server_ready"})");
  EXPECT_EQ(speech_end_message(), R"({"status":"ok","type":"speech_end"})");
  EXPECT_EQ(failed_message("x"), R"({"status":"failed","message":"x"})");
  StreamResult r;
  r.nbest.push_back({"hi", {1, 2}, {{"h", 0, 40}, {"i", 40, 80}}, -1.0});
  r.nbest.push_back({"ho", {1, 3}, {{"h", 0, 40}, {"o", 40, 80}}, -2.0});
  EXPECT_EQ(result_message(r, 1), R"({"status":"ok","type":"partial_result","nbest":"[{\"sentence\":\"hi\"}]"})");
  r.is_final = true;
  EXPECT_EQ(result_message(r, 2),
            R"({"status":"ok","type":"final_result","nbest":"[{\"sentence\":\"hi\",\"word_pieces\":[{\"word\":\"h\",\"start\":0,\"end\":40},{\"word\":\"i\",\"start\":40,\"end\":80}]},{\"sentence\":\"ho\",\"word_pieces\":[{\"word\":\"h\",\"start\":0,\"end\":40},{\"word\":\"o\",\"start\":40,\"end\":80}]}]"})");
}

TEST(HttpApi, MultipartFormData) {
  const std::string body =
      "--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
      "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
      "RIFF\r\n--not-a-boundary\r\n\r\n--XyZ--\r\n";
  const auto parts = parse_multipart("multipart/form-data; boundary=XyZ", body);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].name, "model");
  EXPECT_EQ(parts[0].data, "whisper-1");
  EXPECT_EQ(parts[1].filename, "a.wav");
  EXPECT_EQ(parts[1].content_type, "audio/wav");
  EXPECT_EQ(parts[1].data, "RIFF\r\n--not-a-boundary\r\n");
  EXPECT_THROW(parse_multipart("application/json", body), Error);
  EXPECT_THROW(parse_multipart("multipart/form-data; boundary=XyZ", "--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nno end"), Error);
  EXPECT_THROW(parse_transcription_form({{"model", "", "", "x"}}), Error);  // no file
  EXPECT_THROW(parse_transcription_form({{"file", "a.wav", "", "RIFF"}, {"response_format", "", "", "xml"}}), Error);
}

TEST(HttpApi, WordsFromPieces) {
  const std::string sep = "\xE2\x96\x81";
  const auto w = words_of({{"h", 0, 40}, {"i", 40, 80}, {sep, 80, 120}, {"y", 120, 160}, {"o", 160, 200}});
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].word, "hi");
  EXPECT_EQ(w[0].end_ms, 80);
  EXPECT_EQ(w[1].word, "yo");
  EXPECT_EQ(w[1].start_ms, 120);
  const auto bpe = words_of({{sep + "HE", 0, 40}, {"LLO", 40, 80}, {sep + "W", 80, 120}});
  ASSERT_EQ(bpe.size(), 2u);
  EXPECT_EQ(bpe[0].word, "HELLO");
  EXPECT_EQ(words_of({{"\xE4\xBD\xA0", 0, 40}, {"\xE5\xA5\xBD", 40, 80}}).size(), 2u);  // characters
}

TEST(HttpApi, OpenAiShapes) {
  RecognitionResult r;
  r.text = "hi yo";
  r.duration_s = 1.5;
  r.word_pieces = {{"h", 0, 40}, {"i", 40, 80}, {"\xE2\x96\x81", 80, 120}, {"y", 120, 160}, {"o", 160, 200}};
  EXPECT_EQ(openai_transcription_reply(r, "json").body, R"({"text":"hi yo"})");
  EXPECT_EQ(openai_transcription_reply(r, "text").body, "hi yo\n");
  const auto v = nlohmann::json::parse(openai_transcription_reply(r, "verbose_json").body);
  EXPECT_EQ(v.at("words").size(), 2u);
  EXPECT_DOUBLE_EQ(v.at("words")[1].at("start").get<double>(), 0.12);
  EXPECT_EQ(v.at("segments")[0].at("text"), "hi yo");
  EXPECT_NE(openai_transcription_reply(r, "srt").body.find("00:00:01,500"), std::string::npos);
  const auto e = nlohmann::json::parse(openai_error(400, "nope").body);
  EXPECT_EQ(e.at("error").at("message"), "nope");
}

}  // namespace
}  // namespace wenet_rt::server
