// Replays every file of tests/regressions/<target>/ through fuzz target <target> (the folder names
// the parser: checkpoint, unpickle, config, cmvn, units, audio). Each must end in a result or a
// clean wenet_rt::Error; when <file>.expect exists, an Error whose message contains its text.
// One test per file, named after it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz/targets.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;

const fs::path kDir = fs::path(WENET_SOURCE_DIR) / "tests" / "regressions";

struct Case {
  std::string target;
  fs::path file;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.target << ": " << c.file.filename().string(); }

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const auto& target : fuzz::all_targets()) {
    const fs::path dir = kDir / target.name;
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && e.path().extension() != ".expect") cases.push_back({target.name, e.path()});
  }
  std::sort(cases.begin(), cases.end(), [](const Case& a, const Case& b) { return a.file < b.file; });
  return cases;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Regression : public ::testing::TestWithParam<Case> {};

TEST_P(Regression, EndsInAResultOrACleanError) {
  const Case& c = GetParam();
  const std::string bytes = read_file(c.file);
  fs::path expect_file = c.file;
  expect_file += ".expect";
  std::string expect;
  if (fs::exists(expect_file)) {
    expect = read_file(expect_file);
    while (!expect.empty() && (expect.back() == '\n' || expect.back() == '\r')) expect.pop_back();
  }
  try {
    fuzz::find_target(c.target)->run(bytes);
    EXPECT_TRUE(expect.empty()) << "accepted; expected an error mentioning '" << expect << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << "message: " << e.what() << "\nmissing: " << expect;
  }
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name = info.param.target + "_" + info.param.file.filename().string();
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Files, Regression, ::testing::ValuesIn(all_cases()), case_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Regression);

}  // namespace
}  // namespace wenet_rt
