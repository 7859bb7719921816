// Writes the seed corpora the fuzz targets start from, generated from the test data rather than
// committed: make_fuzz_corpus <tests/data> <tests/fuzz/seeds> <out>  ->  <out>/<target>/...
//   checkpoint: the small torch-written .pt files, plus each golden final.pt cut down to a dozen
//               of its tensors (same names, prefix and views);
//   unpickle:   the data.pkl of each of those;   config / cmvn / units: train.yaml, global_cmvn, units.txt;
//   audio:      the frontend WAVs, shortened and re-encoded in every container and codec
//               libsndfile writes (PCM, float, u-law, ADPCM, GSM, FLAC, Vorbis; WAV, AIFF, AU...).
// Plus the committed hand-written seeds of <seeds>/<target>/.
#include <sndfile.h>
#include <zip.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/checkpoint_builder.h"
#include "model/pickle.h"

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxSeedBytes = 60000;  // below fuzz.sh's -max_len of 64 KiB

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

// A flat name for a file under tests/data: "wenet-goldens_u2pp_tiny_final.pt".
std::string flat_name(const fs::path& data_dir, const fs::path& p) {
  std::string s = fs::relative(p, data_dir).string();
  for (char& c : s)
    if (c == '/') c = '_';
  return s;
}

// The records of a zip, by name.
std::map<std::string, std::string> zip_records(const fs::path& path) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_RDONLY, &err);
  if (!z) throw std::runtime_error("not a zip: " + path.string());
  std::map<std::string, std::string> out;
  const zip_int64_t n = zip_get_num_entries(z, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    zip_stat_index(z, zip_uint64_t(i), 0, &st);
    std::string bytes(size_t(st.size), '\0');
    zip_file_t* f = zip_fopen_index(z, zip_uint64_t(i), 0);
    if (!f || zip_fread(f, bytes.data(), st.size) != zip_int64_t(st.size))
      throw std::runtime_error("cannot read " + std::string(st.name) + " in " + path.string());
    zip_fclose(f);
    out.emplace(st.name, std::move(bytes));
  }
  zip_discard(z);
  return out;
}

// Small .pt files are seeds as they are. A golden final.pt (megabytes: slow to mutate) becomes a
// small checkpoint of its first tensors with small storages, under its own names, prefix and views.
void checkpoint_seeds(const fs::path& data, const fs::path& out) {
  for (const auto& e : fs::recursive_directory_iterator(data)) {
    if (!e.is_regular_file() || e.path().extension() != ".pt") continue;
    const std::string name = flat_name(data, e.path());
    fs::path seed = out / "checkpoint" / name;
    if (e.file_size() <= kMaxSeedBytes) {
      fs::copy_file(e.path(), seed, fs::copy_options::overwrite_existing);
    } else {
      const auto records = zip_records(e.path());
      std::string prefix, pickle;
      for (const auto& [rec, bytes] : records)
        if (rec.ends_with("/data.pkl")) prefix = rec.substr(0, rec.size() - 9), pickle = bytes;
      std::vector<wenet_rt::test::TensorEntry> tensors;
      std::map<std::string, std::string> storages;
      for (const auto& [tname, t] : wenet_rt::unpickle_state_dict(pickle, e.path().string())) {
        const std::string& bytes = records.at(prefix + "/data/" + t.storage_key);
        if (bytes.size() > 2048 && !storages.count(t.storage_key)) continue;
        wenet_rt::test::TensorEntry te;
        te.name = tname;
        te.storage_type = std::string(wenet_rt::storage_type_name(t.type));
        te.key = t.storage_key;
        te.storage_numel = t.storage_numel;
        te.offset = t.offset;
        te.size = t.sizes;
        te.stride = t.strides;
        tensors.push_back(te);
        storages[t.storage_key] = bytes;
        if (tensors.size() == 12) break;
      }
      seed += ".small.pt";
      wenet_rt::test::write_checkpoint(seed.string(), tensors, storages, prefix);
    }
    for (const auto& [rec, bytes] : zip_records(seed))
      if (rec.ends_with("/data.pkl")) write_file(out / "unpickle" / (seed.filename().string() + ".pkl"), bytes);
  }
}

void text_seeds(const fs::path& data, const fs::path& out) {
  const std::map<std::string, std::string> kinds = {{"train.yaml", "config"}, {"global_cmvn", "cmvn"}, {"units.txt", "units"}};
  for (const auto& e : fs::recursive_directory_iterator(data)) {
    if (!e.is_regular_file()) continue;
    const auto it = kinds.find(e.path().filename().string());
    if (it != kinds.end() && e.file_size() <= kMaxSeedBytes)
      fs::copy_file(e.path(), out / it->second / flat_name(data, e.path()), fs::copy_options::overwrite_existing);
  }
}

struct Encoding {
  const char* name;
  int format;
  bool mono_8k_only;  // GSM 6.10 is defined for 8 kHz mono
};

const Encoding kEncodings[] = {
    {"wav_s16.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, false},   {"wav_s24.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, false},
    {"wav_s32.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_32, false},   {"wav_u8.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, false},
    {"wav_f32.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, false},    {"wav_f64.wav", SF_FORMAT_WAV | SF_FORMAT_DOUBLE, false},
    {"wav_ulaw.wav", SF_FORMAT_WAV | SF_FORMAT_ULAW, false},    {"wav_alaw.wav", SF_FORMAT_WAV | SF_FORMAT_ALAW, false},
    {"wav_ima.wav", SF_FORMAT_WAV | SF_FORMAT_IMA_ADPCM, false}, {"wav_ms.wav", SF_FORMAT_WAV | SF_FORMAT_MS_ADPCM, false},
    {"wav_gsm.wav", SF_FORMAT_WAV | SF_FORMAT_GSM610, true},    {"wavex_s16.wav", SF_FORMAT_WAVEX | SF_FORMAT_PCM_16, false},
    {"rf64_s16.wav", SF_FORMAT_RF64 | SF_FORMAT_PCM_16, false}, {"w64_s16.w64", SF_FORMAT_W64 | SF_FORMAT_PCM_16, false},
    {"aiff_s16.aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_16, false}, {"au_s16.au", SF_FORMAT_AU | SF_FORMAT_PCM_16, false},
    {"caf_s16.caf", SF_FORMAT_CAF | SF_FORMAT_PCM_16, false},   {"flac_s16.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, false},
    {"ogg_vorbis.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, false}, {"voc_u8.voc", SF_FORMAT_VOC | SF_FORMAT_PCM_U8, false},
};

void audio_seeds(const fs::path& data, const fs::path& out) {
  for (const auto& e : fs::directory_iterator(data / "frontend")) {
    if (e.path().extension() != ".wav") continue;
    // Re-encode one file per layout (mono 16 kHz, stereo, 8 kHz): more would repeat each other.
    const std::string stem = e.path().stem().string();
    if (stem != "short_16k_s16" && stem != "stereo_16k_s16" && stem != "speech_8k_s16") continue;
    if (e.file_size() <= kMaxSeedBytes / 4) fs::copy_file(e.path(), out / "audio" / e.path().filename(), fs::copy_options::overwrite_existing);
    SF_INFO in_info{};
    SNDFILE* in = sf_open(e.path().c_str(), SFM_READ, &in_info);
    if (!in) throw std::runtime_error("cannot read " + e.path().string());
    std::vector<float> frames(size_t(1200) * size_t(in_info.channels));  // ~75 ms at 16 kHz
    const sf_count_t got = sf_readf_float(in, frames.data(), 1200);
    sf_close(in);
    for (const Encoding& enc : kEncodings) {
      if (enc.mono_8k_only && (in_info.channels != 1 || in_info.samplerate != 8000)) continue;
      SF_INFO info{};
      info.samplerate = in_info.samplerate;
      info.channels = in_info.channels;
      info.format = enc.format;
      if (!sf_format_check(&info)) continue;
      const fs::path p = out / "audio" / (e.path().stem().string() + "." + enc.name);
      SNDFILE* f = sf_open(p.c_str(), SFM_WRITE, &info);
      if (!f) continue;  // a codec this libsndfile was built without
      sf_writef_float(f, frames.data(), got);
      sf_close(f);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <tests/data> <tests/fuzz/seeds> <out>\n", argv[0]);
    return 2;
  }
  try {
    const fs::path data = argv[1], seeds = argv[2], out = argv[3];
    for (const char* t : {"checkpoint", "unpickle", "config", "cmvn", "units", "audio"}) fs::create_directories(out / t);
    checkpoint_seeds(data, out);
    text_seeds(data, out);
    audio_seeds(data, out);
    if (fs::exists(seeds))
      fs::copy(seeds, out, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    for (const auto& d : fs::directory_iterator(out)) {
      size_t n = 0;
      for ([[maybe_unused]] const auto& f : fs::directory_iterator(d)) ++n;
      std::printf("%-12s %zu seeds\n", d.path().filename().c_str(), n);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_fuzz_corpus: %s\n", e.what());
    return 1;
  }
  return 0;
}
