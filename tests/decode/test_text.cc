#include <gtest/gtest.h>

#include "core/error.h"
#include "decode/text.h"

namespace wenet_rt {
namespace {

TEST(TokensToText, JoinsCharUnits) {
  const std::vector<std::string> units = {"<blank>", "<unk>", "东", "两", "<sos/eos>"};
  EXPECT_EQ(tokens_to_text({2, 3, 2}, units), "东两东");
  EXPECT_EQ(tokens_to_text({}, units), "");
  EXPECT_EQ(tokens_to_text({1, 2}, units), "<unk>东");  // WeNet writes <unk> as it is
}

TEST(TokensToText, BpeWordStartsBecomeSpacesAndEndsAreTrimmed) {
  const std::vector<std::string> units = {"<blank>", "<unk>", "\u2581HE", "LLO", "\u2581WOR", "LD", "\u2581", "你"};
  EXPECT_EQ(tokens_to_text({2, 3, 4, 5}, units), "HELLO WORLD");
  EXPECT_EQ(tokens_to_text({6, 7, 6}, units), "你");
  EXPECT_EQ(tokens_to_text({6}, units), "");
}

TEST(TokensToText, RejectsUnknownIds) {
  EXPECT_THROW(tokens_to_text({5}, {"<blank>", "a"}), Error);
  EXPECT_THROW(tokens_to_text({-1}, {"<blank>", "a"}), Error);
}

// Utterances of one recording: a space between Latin-script texts, none between CJK ones, and
// an empty utterance adds nothing.
TEST(AppendUtteranceText, SpaceOnlyWhereTheScriptWritesOne) {
  std::string t;
  append_utterance_text(t, "hello there");
  append_utterance_text(t, "");
  append_utterance_text(t, "general kenobi");
  EXPECT_EQ(t, "hello there general kenobi");
  std::string c = "\u4f60\u597d";
  append_utterance_text(c, "\u4e16\u754c");
  EXPECT_EQ(c, "\u4f60\u597d\u4e16\u754c");
}

}  // namespace
}  // namespace wenet_rt
