// The model's output vocabulary: units.txt / lang_char.txt, one "token id" pair per line, ids
// 0..N-1 (WeNet: "<blank> 0", "<unk> 1", ..., "<sos/eos> N-1").
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

namespace wenet_rt {

class Vocabulary {
 public:
  Vocabulary() = default;
  // Throws for an unreadable or empty file, a line that is not "token id", a repeated token or
  // id, or ids that do not cover 0..N-1; messages name the file and line.
  static Vocabulary load(const std::string& path);
  // The same from the file's text already in memory; `name` stands for the file in messages.
  static Vocabulary parse(const std::string& text, const std::string& name);
  // From (token, id) pairs (tests, other sources); the same checks, `origin` names the source.
  static Vocabulary from_pairs(const std::vector<std::pair<std::string, int>>& pairs, const std::string& origin);

  int size() const { return int(tokens_.size()); }
  const std::string& token(int id) const;  // throws for an id outside 0..size()-1
  int id(const std::string& token) const;   // -1 when the token is not in the vocabulary
  bool contains(const std::string& token) const { return ids_.count(token) != 0; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int> ids_;
};

}  // namespace wenet_rt
