#include "model/cmvn.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace wenet_rt {

namespace {

constexpr size_t kMaxCmvnBytes = size_t(64) << 20;

std::string read_text(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail("cmvn file {}: file not found", path);
  // Checked before reading, so that a huge file is never loaded.
  const uintmax_t bytes = std::filesystem::file_size(path, ec);
  if (!ec && bytes > kMaxCmvnBytes) fail("cmvn file {}: {} bytes is far too large for CMVN statistics", path, bytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cmvn file {}: cannot open", path);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (text.size() > kMaxCmvnBytes) fail("cmvn file {}: {} bytes is far too large for CMVN statistics", path, text.size());
  return text;
}

Cmvn from_stats(const std::vector<double>& sum, const std::vector<double>& sumsq, double count, const std::string& path) {
  if (sum.empty()) fail("cmvn file {}: no statistics", path);
  if (sum.size() != sumsq.size())
    fail("cmvn file {}: {} mean statistics but {} variance statistics", path, sum.size(), sumsq.size());
  if (!(count > 0) || !std::isfinite(count)) fail("cmvn file {}: frame count must be positive, got {}", path, count);
  Cmvn c;
  c.mean.resize(sum.size());
  c.istd.resize(sum.size());
  for (size_t i = 0; i < sum.size(); ++i) {
    const double mean = sum[i] / count;
    double var = sumsq[i] / count - mean * mean;
    if (var < 1e-20) var = 1e-20;
    c.mean[i] = float(mean);
    c.istd[i] = float(1.0 / std::sqrt(var));
    if (!std::isfinite(c.mean[i]) || !std::isfinite(c.istd[i]))
      fail("cmvn file {}: dimension {} gives a non-finite mean or variance", path, i);
  }
  return c;
}

// A JSON value as an error message shows it: scalars as written (cut when long), containers by
// their type alone (dumping a hostile, deeply nested one would recurse without bound).
std::string shown(const nlohmann::json& x) {
  if (!x.is_primitive()) return std::string("(") + x.type_name() + ")";
  const std::string text = x.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return "'" + (text.size() <= 80 ? text : text.substr(0, 80) + "...") + "'";
}

std::vector<double> json_numbers(const nlohmann::json& j, const char* key, const std::string& path) {
  if (!j.contains(key)) fail("cmvn file {}: missing key '{}'", path, key);
  const auto& a = j.at(key);
  if (!a.is_array()) fail("cmvn file {}: '{}' must be a list of numbers", path, key);
  std::vector<double> v;
  for (const auto& x : a) {
    if (!x.is_number()) fail("cmvn file {}: '{}' holds a non-number {}", path, key, shown(x));
    v.push_back(x.get<double>());
  }
  return v;
}

Cmvn read_json_cmvn(const std::string& path, const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("cmvn file {}: not valid JSON ({}); is it a Kaldi text file (set is_json_cmvn: false)?", path, e.what());
  }
  if (!j.is_object()) fail("cmvn file {}: expected a JSON object with mean_stat, var_stat, frame_num", path);
  if (!j.contains("frame_num") || !j.at("frame_num").is_number())
    fail("cmvn file {}: missing numeric key 'frame_num'", path);
  return from_stats(json_numbers(j, "mean_stat", path), json_numbers(j, "var_stat", path), j.at("frame_num").get<double>(), path);
}

double parse_number(const std::string& token, const std::string& path) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(token, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != token.size()) fail("cmvn file {}: expected a number, got '{}'", path, token);
  return v;
}

Cmvn read_kaldi_cmvn(const std::string& path, const std::string& text) {
  if (text.size() >= 2 && text[0] == '\0' && text[1] == 'B')
    fail("cmvn file {}: Kaldi binary statistics are not supported; write them with compute-cmvn-stats --binary=false", path);
  std::istringstream in(text);
  std::vector<std::string> tok;
  for (std::string t; in >> t;) tok.push_back(t);
  // "[", sum_1..sum_D, count, sumsq_1..sumsq_D, "0", "]"
  if (tok.size() < 6 || tok.front() != "[" || tok.back() != "]" || tok.size() % 2 != 0)
    fail("cmvn file {}: expected Kaldi text statistics '[ sum... count sumsq... 0 ]' (or JSON: set is_json_cmvn: true)", path);
  const size_t dim = (tok.size() - 4) / 2;
  std::vector<double> sum(dim), sumsq(dim);
  for (size_t i = 0; i < dim; ++i) {
    sum[i] = parse_number(tok[1 + i], path);
    sumsq[i] = parse_number(tok[dim + 2 + i], path);
  }
  const double count = parse_number(tok[dim + 1], path);
  if (parse_number(tok[tok.size() - 2], path) != 0.0)
    fail("cmvn file {}: the last column of the second row must be 0 (is this a {}-dim statistics matrix?)", path, dim);
  return from_stats(sum, sumsq, count, path);
}

}  // namespace

Cmvn read_cmvn(const std::string& path, bool is_json) {
  const std::string text = read_text(path);
  return is_json ? read_json_cmvn(path, text) : read_kaldi_cmvn(path, text);
}

Cmvn parse_cmvn_text(const std::string& text, bool is_json, const std::string& name) {
  if (text.size() > kMaxCmvnBytes) fail("cmvn file {}: {} bytes is far too large for CMVN statistics", name, text.size());
  return is_json ? read_json_cmvn(name, text) : read_kaldi_cmvn(name, text);
}

}  // namespace wenet_rt
