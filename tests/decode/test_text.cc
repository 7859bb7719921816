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

}  // namespace
}  // namespace wenet_rt
