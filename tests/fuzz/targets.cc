#include "targets.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "frontend/audio.h"
#include "frontend/fbank.h"
#include "model/checkpoint.h"
#include "model/cmvn.h"
#include "model/config.h"
#include "model/params.h"
#include "model/pickle.h"
#include "model/vocab.h"

namespace wenet_rt::fuzz {

namespace {

void checkpoint(std::string_view bytes) {
  const auto tensors = read_checkpoint_bytes(bytes, "<fuzz>");
  for (const auto& [name, t] : tensors) {  // what came back must be self-consistent
    int64_t numel = 1;
    for (int64_t d : t.shape()) numel *= d;
    WENET_CHECK(numel == t.numel(), "tensor '{}': shape and element count disagree", name);
  }
}

void unpickle(std::string_view bytes) {
  const auto entries = unpickle_state_dict(bytes, "<fuzz>");
  for (const auto& [name, t] : entries) WENET_CHECK(t.sizes.size() == t.strides.size(), "tensor '{}': rank mismatch", name);
}

// What load_model_dir and the Recognizer do next with an accepted config: list the tensors it
// expects and set up the fbank it describes.
void config(std::string_view bytes) {
  const ModelConfig c = parse_config_text(std::string(bytes), "<fuzz>/train.yaml");
  (void)describe(c);
  (void)expected_parameters(c);
  FbankOptions fo;
  fo.sample_rate = c.fbank.sample_rate;
  fo.num_mel_bins = c.fbank.num_mel_bins;
  fo.frame_length_ms = c.fbank.frame_length_ms;
  fo.frame_shift_ms = c.fbank.frame_shift_ms;
  fo.validate();
}

void cmvn(std::string_view bytes) {
  // The same bytes through both readers (most inputs fail one and exercise the other); when both
  // refuse them, the JSON reader's error is the one reported.
  const std::string text(bytes);
  std::string json_error;
  for (const bool json : {true, false}) {
    try {
      const Cmvn c = parse_cmvn_text(text, json, "<fuzz>/global_cmvn");
      WENET_CHECK(c.mean.size() == c.istd.size() && !c.empty(), "cmvn: inconsistent result");
      return;
    } catch (const Error& e) {
      if (json) json_error = e.what();
    }
  }
  throw Error(json_error);
}

void units(std::string_view bytes) {
  const Vocabulary v = Vocabulary::parse(std::string(bytes), "<fuzz>/units.txt");
  for (int id = 0; id < v.size(); ++id) WENET_CHECK(v.id(v.token(id)) == id, "units: id {} does not round-trip", id);
}

// libsndfile reads files, so the bytes go through one temp file per process (kept in /dev/shm
// when it exists, to spare the disk).
const std::string& audio_temp_path() {
  // Never destroyed: the exit handler that removes the file runs after static destructors.
  static const std::string* path = [] {
    const std::filesystem::path dir = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    auto* p = new std::string((dir / "wenet-rt-fuzz-audio-XXXXXX").string());
    const int fd = mkstemp(p->data());
    if (fd < 0) fail("cannot create a temp file in {}", dir.string());
    close(fd);
    std::atexit([] { unlink(audio_temp_path().c_str()); });
    return p;
  }();
  return *path;
}

void audio(std::string_view bytes) {
  const std::string& path = audio_temp_path();
  {
    const int fd = open(path.c_str(), O_WRONLY | O_TRUNC);
    if (fd < 0) fail("cannot write {}", path);
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
      if (n <= 0) break;
      done += size_t(n);
    }
    close(fd);
  }
  const Audio a = read_audio(path, 16000);
  // The features of the first second: what the samples hold (NaN, inf, any float) reaches the
  // fbank; more of them would only make each run slower.
  static const Fbank fbank;
  std::vector<float> feats;
  fbank.compute(a.samples.data(), int(std::min<size_t>(a.samples.size(), 16000)), feats);
}

}  // namespace

const std::vector<Target>& all_targets() {
  static const std::vector<Target> targets = {
      {"checkpoint", checkpoint}, {"unpickle", unpickle}, {"config", config},
      {"cmvn", cmvn},             {"units", units},       {"audio", audio},
  };
  return targets;
}

const Target* find_target(std::string_view name) {
  for (const Target& t : all_targets())
    if (name == t.name) return &t;
  return nullptr;
}

}  // namespace wenet_rt::fuzz
