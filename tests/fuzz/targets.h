// The parsers that files from outside the engine reach, each driven the way the engine drives it.
// Shared by the libFuzzer targets (fuzz_target.cc, one binary per entry) and by the regression
// test that replays tests/regressions/<name>/*, so a fixed crash stays fixed in the normal build.
#pragma once

#include <string_view>
#include <vector>

namespace wenet_rt::fuzz {

// Parses `bytes`. Refusing them by throwing wenet_rt::Error is expected; any other exception, a
// crash, a hang or a sanitizer report is a bug.
using TargetFn = void (*)(std::string_view bytes);

struct Target {
  const char* name;  // also the corpus / regression folder name
  TargetFn run;
};

// checkpoint (zip + unpickler + tensor rebuild), unpickle (data.pkl alone), config (train.yaml),
// cmvn (JSON and Kaldi text), units (units.txt), audio (read_audio + resampling + fbank).
const std::vector<Target>& all_targets();
// nullptr when there is no target of that name.
const Target* find_target(std::string_view name);

}  // namespace wenet_rt::fuzz
