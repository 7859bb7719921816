#include "model/vocab.h"

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace wenet_rt {

namespace {

constexpr int kMaxVocab = 1 << 24;

}  // namespace

Vocabulary Vocabulary::from_pairs(const std::vector<std::pair<std::string, int>>& pairs, const std::string& origin) {
  if (pairs.empty()) fail("{}: empty vocabulary", origin);
  if (pairs.size() > size_t(kMaxVocab)) fail("{}: {} tokens is more than the {} supported", origin, pairs.size(), kMaxVocab);
  Vocabulary v;
  v.path_ = origin;
  v.tokens_.assign(pairs.size(), std::string());
  std::vector<bool> seen(pairs.size(), false);
  for (const auto& [token, id] : pairs) {
    if (id < 0 || size_t(id) >= pairs.size())
      fail("{}: token '{}' has id {}, but ids must run from 0 to {} (one per token, no gaps)", origin, token, id,
           pairs.size() - 1);
    if (seen[size_t(id)]) fail("{}: id {} is given to both '{}' and '{}'", origin, id, v.tokens_[size_t(id)], token);
    const auto [it, fresh] = v.ids_.emplace(token, id);
    if (!fresh) fail("{}: token '{}' appears twice (ids {} and {})", origin, token, it->second, id);
    seen[size_t(id)] = true;
    v.tokens_[size_t(id)] = token;
  }
  return v;
}

namespace {

Vocabulary parse_lines(std::istream& in, const std::string& origin) {
  std::vector<std::pair<std::string, int>> pairs;
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream fields(line);
    std::string token, id_text, extra;
    if (!(fields >> token)) continue;  // blank line
    if (!(fields >> id_text) || (fields >> extra))
      fail("{}: line {}: expected 'token id', got '{}'", origin, lineno, line);
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(id_text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != id_text.size() || id < 0 || id > std::numeric_limits<int>::max())
      fail("{}: line {}: '{}' is not a valid token id", origin, lineno, id_text);
    pairs.emplace_back(token, int(id));
    if (pairs.size() > size_t(kMaxVocab)) fail("{}: more than {} tokens", origin, kMaxVocab);
  }
  if (pairs.empty()) fail("{}: empty file (no 'token id' lines)", origin);
  return Vocabulary::from_pairs(pairs, origin);
}

}  // namespace

Vocabulary Vocabulary::load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail("units file {}: file not found", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("units file {}: cannot open", path);
  Vocabulary v = parse_lines(in, "units file " + path);
  v.path_ = path;
  return v;
}

Vocabulary Vocabulary::parse(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  Vocabulary v = parse_lines(in, "units file " + name);
  v.path_ = name;
  return v;
}

const std::string& Vocabulary::token(int id) const {
  if (id < 0 || id >= size()) fail("vocabulary {}: token id {} out of range [0, {})", path_, id, size());
  return tokens_[size_t(id)];
}

int Vocabulary::id(const std::string& token) const {
  const auto it = ids_.find(token);
  return it == ids_.end() ? -1 : it->second;
}

}  // namespace wenet_rt
