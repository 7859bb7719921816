// Global CMVN statistics: feat' = (feat - mean) * istd, per feature dimension.
#pragma once

#include <string>
#include <vector>

namespace wenet_rt {

struct Cmvn {
  std::vector<float> mean, istd;
  size_t dim() const { return mean.size(); }
  bool empty() const { return mean.empty(); }
};

// Reads WeNet's JSON statistics ({"mean_stat": [...], "var_stat": [...], "frame_num": N}) or, when
// `is_json` is false, Kaldi's text statistics (compute-cmvn-stats --binary=false: a 2 x (dim+1)
// matrix "[ sum... count \n sumsq... 0 ]"). As WeNet does, in double: mean = sum / count,
// var = sumsq / count - mean^2 floored at 1e-20, istd = 1 / sqrt(var).
Cmvn read_cmvn(const std::string& path, bool is_json);
// The same from the file's text already in memory; `name` stands for the file in messages.
Cmvn parse_cmvn_text(const std::string& text, bool is_json, const std::string& name);

}  // namespace wenet_rt
