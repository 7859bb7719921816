#include "decode/text.h"

#include <cctype>

#include "core/error.h"

namespace wenet_rt {

void append_utterance_text(std::string& text, const std::string& more) {
  if (more.empty()) return;
  const auto latin = [](unsigned char c) { return c < 0x80 && std::isalnum(c); };
  if (!text.empty() && (latin(text.back()) || latin(more.front()))) text += ' ';
  text += more;
}

std::string tokens_to_text(const std::vector<int>& tokens, const std::vector<std::string>& units) {
  static const std::string kWordBoundary = "\xe2\x96\x81";  // "▁", sentencepiece's word start
  std::string joined;
  for (int t : tokens) {
    WENET_CHECK(t >= 0 && size_t(t) < units.size(), "tokens_to_text: token id {} out of range, expected [0, {})", t,
                units.size());
    joined += units[size_t(t)];
  }
  std::string text;
  text.reserve(joined.size());
  for (size_t i = 0; i < joined.size();) {
    if (joined.compare(i, kWordBoundary.size(), kWordBoundary) == 0) {
      text += ' ';
      i += kWordBoundary.size();
    } else {
      text += joined[i++];
    }
  }
  const char* space = " \t\n\r\f\v";
  const size_t first = text.find_first_not_of(space);
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

}  // namespace wenet_rt
