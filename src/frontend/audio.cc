#include "frontend/audio.h"

#include <sndfile.h>
#include <soxr.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "core/error.h"

namespace wenet_rt {
namespace {

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;

uint32_t read_le32(const unsigned char* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// For a little-endian RIFF/WAVE file: the byte sizes (declared, present) of its `data` chunk.
// libsndfile silently shortens a WAV whose data chunk runs past the end of the file (it only
// notes it in its log), so a truncated download would otherwise decode as a shorter utterance.
std::optional<std::pair<uint64_t, uint64_t>> wav_data_chunk_sizes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::array<unsigned char, 12> riff{};
  if (!in.read(reinterpret_cast<char*>(riff.data()), riff.size())) return std::nullopt;
  if (std::string(riff.begin(), riff.begin() + 4) != "RIFF" ||
      std::string(riff.begin() + 8, riff.end()) != "WAVE") {
    return std::nullopt;  // RIFX / RF64 / other containers: rely on libsndfile's frame count
  }
  const uint64_t file_size = std::filesystem::file_size(path);
  uint64_t offset = 12;
  for (int chunk = 0; chunk < 256; ++chunk) {
    std::array<unsigned char, 8> header{};
    in.seekg(static_cast<std::streamoff>(offset));
    if (!in.read(reinterpret_cast<char*>(header.data()), header.size())) return std::nullopt;
    const uint64_t size = read_le32(header.data() + 4);
    offset += 8;
    if (std::string(header.begin(), header.begin() + 4) == "data") {
      const uint64_t present = file_size > offset ? file_size - offset : 0;
      return std::make_pair(size, present);
    }
    offset += size + (size & 1);  // chunks are padded to an even size
  }
  return std::nullopt;
}

void check_wav_not_truncated(const std::string& path) {
  const auto sizes = wav_data_chunk_sizes(path);
  if (!sizes) return;
  const auto [declared, present] = *sizes;
  // 0 and 0xFFFFFFFF are the placeholders streaming writers leave when the length is unknown.
  if (declared == 0 || declared == 0xFFFFFFFFu) return;
  if (declared > present) {
    fail("audio file '{}': truncated: the WAV header declares {} bytes of samples, the file holds {}",
         path, declared, present);
  }
}

void check_plausible(const std::string& path, const SF_INFO& info) {
  if (info.channels < 1 || info.channels > kMaxChannels) {
    fail("audio file '{}': expected 1..{} channels, got {}", path, kMaxChannels, info.channels);
  }
  if (info.samplerate < kMinSampleRate || info.samplerate > kMaxSampleRate) {
    fail("audio file '{}': expected a sample rate of {}..{} Hz, got {}", path, kMinSampleRate,
         kMaxSampleRate, info.samplerate);
  }
  if (info.frames < 0 || info.frames > kMaxSamples) {
    fail("audio file '{}': expected at most {} samples per channel, the header declares {}", path,
         kMaxSamples, static_cast<long long>(info.frames));
  }
}

}  // namespace

namespace {

// Opens `path` for reading with libsndfile after the checks every reader wants.
SndfilePtr open_audio(const std::string& path, SF_INFO& info) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) fail("audio file '{}': no such file", path);
  if (std::filesystem::is_directory(status)) fail("audio file '{}': is a directory", path);
  if (std::filesystem::is_regular_file(status) && std::filesystem::file_size(path, ec) == 0 && !ec) {
    fail("audio file '{}': the file is empty (0 bytes)", path);
  }

  info = SF_INFO{};
  SndfilePtr file(sf_open(path.c_str(), SFM_READ, &info));
  if (!file) {
    fail("audio file '{}': cannot decode it as audio (libsndfile: {})", path, sf_strerror(nullptr));
  }
  check_plausible(path, info);
  if ((info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_WAV ||
      (info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_WAVEX) {
    check_wav_not_truncated(path);
  }
  if (info.frames == 0) fail("audio file '{}': contains no samples", path);
  return file;
}

}  // namespace

AudioInfo probe_audio(const std::string& path) {
  SF_INFO info{};
  open_audio(path, info);
  return {static_cast<long long>(info.frames), info.samplerate};
}

namespace {

// Decodes every frame of an open file (first channel) and resamples; `name` names it in errors.
Audio decode_open(SNDFILE* file, const SF_INFO& info, int target_rate, const std::string& path) {
  // Normalized floats: integer PCM becomes [-1, 1), float data is kept as stored.
  sf_command(file, SFC_SET_NORM_FLOAT, nullptr, SF_TRUE);
  Audio audio;
  audio.sample_rate = info.samplerate;
  // The header's frame count is only a claim (FLAC and Ogg state it up front, so a 2 KB file can
  // declare 2^31 samples): reserve at most ~4 M samples and let decoded samples grow the buffer.
  constexpr sf_count_t kMaxReserve = sf_count_t(1) << 22;
  audio.samples.reserve(static_cast<size_t>(std::min(info.frames, kMaxReserve)) + 4096);  // + one read block
  constexpr sf_count_t kBlockFrames = 4096;
  std::vector<float> block(info.channels > 1 ? static_cast<size_t>(kBlockFrames) * info.channels : 0);
  for (;;) {
    // Mono decodes straight into the samples; otherwise the first channel is picked from a block.
    const size_t have = audio.samples.size();
    if (info.channels == 1) audio.samples.resize(have + kBlockFrames);
    float* out = info.channels == 1 ? audio.samples.data() + have : block.data();
    const sf_count_t got = sf_readf_float(file, out, kBlockFrames);
    if (info.channels == 1) audio.samples.resize(have + size_t(std::max<sf_count_t>(got, 0)));
    if (got <= 0) break;
    if (static_cast<long long>(have) + got > kMaxSamples) {
      fail("audio file '{}': expected at most {} samples per channel, it decodes to more", path,
           kMaxSamples);
    }
    for (sf_count_t i = 0; info.channels > 1 && i < got; ++i) audio.samples.push_back(block[i * info.channels]);
  }
  if (sf_error(file) != SF_ERR_NO_ERROR) {
    fail("audio file '{}': decoding failed after {} samples (libsndfile: {})", path,
         audio.samples.size(), sf_strerror(file));
  }
  if (static_cast<sf_count_t>(audio.samples.size()) < info.frames) {
    fail("audio file '{}': truncated: the header declares {} samples per channel, only {} decode",
         path, static_cast<long long>(info.frames), audio.samples.size());
  }
  if (audio.samples.empty()) fail("audio file '{}': contains no samples", path);
  if (target_rate == 0 || target_rate == audio.sample_rate) return audio;  // moved, not copied
  try {
    return resample(audio, target_rate);
  } catch (const Error& e) {
    fail("audio file '{}': {}", path, e.what());
  }
}

// libsndfile's virtual I/O over bytes in memory.
struct MemoryFile {
  const std::string* bytes;
  sf_count_t pos = 0;
};
sf_count_t mem_length(void* user) { return sf_count_t(static_cast<MemoryFile*>(user)->bytes->size()); }
sf_count_t mem_seek(sf_count_t offset, int whence, void* user) {
  auto* m = static_cast<MemoryFile*>(user);
  const sf_count_t size = sf_count_t(m->bytes->size());
  sf_count_t to = whence == SEEK_SET ? offset : whence == SEEK_CUR ? m->pos + offset : size + offset;
  m->pos = std::clamp<sf_count_t>(to, 0, size);
  return m->pos;
}
sf_count_t mem_read(void* ptr, sf_count_t count, void* user) {
  auto* m = static_cast<MemoryFile*>(user);
  const sf_count_t n = std::clamp<sf_count_t>(sf_count_t(m->bytes->size()) - m->pos, 0, count);
  std::memcpy(ptr, m->bytes->data() + m->pos, size_t(n));
  m->pos += n;
  return n;
}
sf_count_t mem_write(const void*, sf_count_t, void*) { return 0; }
sf_count_t mem_tell(void* user) { return static_cast<MemoryFile*>(user)->pos; }

}  // namespace

Audio read_audio(const std::string& path, int target_rate) {
  SF_INFO info{};
  SndfilePtr file = open_audio(path, info);
  return decode_open(file.get(), info, target_rate, path);
}

namespace {

// Opens bytes in memory as read_audio opens a file (`mem` must outlive the handle).
SndfilePtr open_memory(MemoryFile& mem, SF_INFO& info, const std::string& name) {
  if (mem.bytes->empty()) fail("audio file '{}': the file is empty (0 bytes)", name);
  SF_VIRTUAL_IO io{mem_length, mem_seek, mem_read, mem_write, mem_tell};
  SndfilePtr file(sf_open_virtual(&io, SFM_READ, &info, &mem));
  if (!file) fail("audio file '{}': cannot decode it as audio (libsndfile: {})", name, sf_strerror(nullptr));
  check_plausible(name, info);
  if (info.frames == 0) fail("audio file '{}': contains no samples", name);
  return file;
}

}  // namespace

AudioInfo probe_audio_bytes(const std::string& bytes, const std::string& name) {
  MemoryFile mem{&bytes};
  SF_INFO info{};
  open_memory(mem, info, name);
  return {static_cast<long long>(info.frames), info.samplerate};
}

Audio decode_audio(const std::string& bytes, int target_rate, const std::string& name) {
  MemoryFile mem{&bytes};
  SF_INFO info{};
  SndfilePtr file = open_memory(mem, info, name);
  return decode_open(file.get(), info, target_rate, name);
}

Audio audio_from_samples(std::vector<float> samples, int sample_rate, int target_rate) {
  Audio audio;
  audio.samples = std::move(samples);
  audio.sample_rate = sample_rate;
  if (target_rate == 0 || target_rate == sample_rate) {  // no resampling: keep (move) the samples
    WENET_CHECK(sample_rate >= kMinSampleRate && sample_rate <= kMaxSampleRate,
                "expected a sample rate of {}..{} Hz, got {}", kMinSampleRate, kMaxSampleRate, sample_rate);
    return audio;
  }
  return resample(audio, target_rate);
}

Audio resample(const Audio& audio, int target_rate) {
  WENET_CHECK(audio.sample_rate >= kMinSampleRate && audio.sample_rate <= kMaxSampleRate,
              "resample: expected an input sample rate of {}..{} Hz, got {}", kMinSampleRate,
              kMaxSampleRate, audio.sample_rate);
  if (target_rate == 0 || target_rate == audio.sample_rate) return audio;
  WENET_CHECK(target_rate >= kMinSampleRate && target_rate <= kMaxSampleRate,
              "resample: expected a target sample rate of {}..{} Hz (or 0 to keep the input's), got {}",
              kMinSampleRate, kMaxSampleRate, target_rate);
  Audio out;
  out.sample_rate = target_rate;
  if (audio.samples.empty()) return out;

  const double ratio = static_cast<double>(target_rate) / audio.sample_rate;
  const double expected = std::ceil(static_cast<double>(audio.samples.size()) * ratio) + 1;
  WENET_CHECK(expected <= static_cast<double>(kMaxSamples),
              "resample: {} samples at {} Hz would become {} at {} Hz, expected at most {}",
              audio.samples.size(), audio.sample_rate, expected, target_rate, kMaxSamples);
  out.samples.resize(static_cast<size_t>(expected));
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t quality = soxr_quality_spec(SOXR_HQ, 0);
  size_t consumed = 0, produced = 0;
  // One-shot: soxr flushes its filter, so the output holds round(n * ratio) samples.
  const soxr_error_t error = soxr_oneshot(audio.sample_rate, target_rate, 1, audio.samples.data(),
                                          audio.samples.size(), &consumed, out.samples.data(),
                                          out.samples.size(), &produced, &io, &quality, nullptr);
  if (error) {
    fail("resample {} Hz -> {} Hz failed (soxr: {})", audio.sample_rate, target_rate, error);
  }
  out.samples.resize(produced);
  WENET_CHECK(!out.samples.empty(), "resample {} Hz -> {} Hz: {} samples are too few to resample",
              audio.sample_rate, target_rate, audio.samples.size());
  return out;
}

}  // namespace wenet_rt
