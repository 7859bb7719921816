// read_audio: formats, channels, resampling, and the errors for bad files.
#include <gtest/gtest.h>
#include <sndfile.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>

#include "core/error.h"
#include "frontend/audio.h"

namespace wenet_rt {
namespace {

namespace fs = std::filesystem;
const std::string kDataDir = std::string(WENET_TEST_DATA) + "/frontend/";

class AudioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("wenet_rt_test_audio_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write_bytes(const std::string& name, const std::string& bytes) const {
    std::ofstream(path(name), std::ios::binary) << bytes;
    return path(name);
  }

  // Writes interleaved frames with libsndfile in the given format.
  std::string write_audio(const std::string& name, int format, int rate, int channels,
                          const std::vector<float>& interleaved) const {
    SF_INFO info{};
    info.samplerate = rate;
    info.channels = channels;
    info.format = format;
    SNDFILE* f = sf_open(path(name).c_str(), SFM_WRITE, &info);
    EXPECT_NE(f, nullptr) << sf_strerror(nullptr);
    sf_writef_float(f, interleaved.data(), static_cast<sf_count_t>(interleaved.size() / channels));
    sf_close(f);
    return path(name);
  }

  fs::path dir_;
};

std::vector<float> sine(double hz, int rate, int n, double amplitude = 0.5) {
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>(amplitude * std::sin(2 * std::numbers::pi * hz * i / rate));
  return x;
}

// Frequency from the count of upward zero crossings in the steady middle of the signal.
double estimate_frequency(const std::vector<float>& x, int rate) {
  const size_t begin = x.size() / 10, end = x.size() - x.size() / 10;
  int crossings = 0;
  size_t first = 0, last = 0;
  for (size_t i = begin + 1; i < end; ++i) {
    if (x[i - 1] < 0 && x[i] >= 0) {
      if (crossings == 0) first = i;
      last = i;
      ++crossings;
    }
  }
  return (crossings - 1) * static_cast<double>(rate) / static_cast<double>(last - first);
}

// The error must name the file and say what is wrong.
void expect_error(const std::string& file, const std::string& phrase) {
  try {
    read_audio(file, 16000);
    ADD_FAILURE() << "expected an error for " << file;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(file), std::string::npos) << what;
    EXPECT_NE(what.find(phrase), std::string::npos) << what;
  }
}

bool is_integer(double v) { return v == std::floor(v); }

TEST_F(AudioTest, Reads16BitPcmAsNormalizedInt16Values) {
  const Audio audio = read_audio(kDataDir + "speech_16k_s16.wav", 16000);
  EXPECT_EQ(audio.sample_rate, 16000);
  ASSERT_EQ(audio.samples.size(), 32000u);
  EXPECT_DOUBLE_EQ(audio.duration(), 2.0);
  float peak = 0;
  for (float v : audio.samples) {
    ASSERT_TRUE(is_integer(v * 32768.0));
    peak = std::max(peak, std::abs(v));
  }
  EXPECT_GT(peak, 0.5f);
  EXPECT_LT(peak, 1.0f);
}

TEST_F(AudioTest, Reads24BitPcmWithFullPrecision) {
  const Audio audio = read_audio(kDataDir + "speech_16k_s24.wav", 16000);
  ASSERT_EQ(audio.samples.size(), 16000u);
  int finer_than_16_bits = 0;
  for (float v : audio.samples) {
    ASSERT_TRUE(is_integer(v * 8388608.0));
    finer_than_16_bits += !is_integer(v * 32768.0);
  }
  EXPECT_GT(finer_than_16_bits, 8000);
}

TEST_F(AudioTest, ReadsFloatWavAsStored) {
  const std::vector<float> x = sine(440, 16000, 1600, 0.7);
  const Audio audio = read_audio(write_audio("f.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, x), 16000);
  EXPECT_EQ(audio.samples, x);
  EXPECT_EQ(read_audio(kDataDir + "speech_16k_f32.wav", 16000).samples.size(), 16000u);
}

TEST_F(AudioTest, ReadsFlac) {
  std::vector<float> x(4000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i % 2000) - 1000) / 32768.f;
  const Audio audio = read_audio(write_audio("a.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, x), 16000);
  EXPECT_EQ(audio.samples, x);
}

TEST_F(AudioTest, KeepsTheFirstChannel) {
  std::vector<float> interleaved;
  for (int i = 0; i < 1000; ++i) {
    interleaved.push_back(i / 32768.f);
    interleaved.push_back(-0.5f);
    interleaved.push_back(0.25f);
  }
  const Audio audio = read_audio(write_audio("3ch.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 3, interleaved), 16000);
  ASSERT_EQ(audio.samples.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(audio.samples[i], i / 32768.f);

  // The committed stereo file: speech on channel 0, a loud 1 kHz tone on channel 1.
  const Audio stereo = read_audio(kDataDir + "stereo_16k_s16.wav", 16000);
  EXPECT_EQ(stereo.samples.size(), 16000u);
  EXPECT_GT(std::abs(estimate_frequency(stereo.samples, 16000) - 1000), 50);
}

TEST_F(AudioTest, ResamplesToTheTargetRate) {
  const Audio up = read_audio(write_audio("8k.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000, 1, sine(440, 8000, 8000)), 16000);
  EXPECT_EQ(up.sample_rate, 16000);
  EXPECT_EQ(up.samples.size(), 16000u);
  EXPECT_NEAR(estimate_frequency(up.samples, 16000), 440, 2);

  const Audio down = read_audio(write_audio("44k.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 44100, 1, sine(1000, 44100, 44100)), 16000);
  EXPECT_EQ(down.samples.size(), 16000u);
  EXPECT_NEAR(estimate_frequency(down.samples, 16000), 1000, 2);
  float peak = 0;
  for (size_t i = 1000; i < 15000; ++i) peak = std::max(peak, std::abs(down.samples[i]));
  EXPECT_NEAR(peak, 0.5f, 0.01f);

  const Audio kept = read_audio(path("44k.wav"), 0);
  EXPECT_EQ(kept.sample_rate, 44100);
  EXPECT_EQ(kept.samples.size(), 44100u);

  const Audio from_memory = audio_from_samples(sine(440, 8000, 801), 8000, 16000);
  EXPECT_EQ(from_memory.samples.size(), 1602u);
}

TEST_F(AudioTest, MissingFile) { expect_error(path("nope.wav"), "no such file"); }

TEST_F(AudioTest, Directory) { expect_error(dir_.string(), "is a directory"); }

TEST_F(AudioTest, ZeroByteFile) { expect_error(write_bytes("zero.wav", ""), "empty (0 bytes)"); }

TEST_F(AudioTest, TextFile) {
  expect_error(write_bytes("notes.wav", "this is a text file, not audio\n"), "cannot decode it as audio");
}

std::string wav_header(uint32_t data_bytes) {
  auto u32 = [](uint32_t v) { return std::string{char(v), char(v >> 8), char(v >> 16), char(v >> 24)}; };
  auto u16 = [](uint16_t v) { return std::string{char(v), char(v >> 8)}; };
  return "RIFF" + u32(36 + data_bytes) + "WAVEfmt " + u32(16) + u16(1) + u16(1) + u32(16000) +
         u32(32000) + u16(2) + u16(16) + "data" + u32(data_bytes);
}

TEST_F(AudioTest, WavWithNoSamples) {
  expect_error(write_bytes("empty.wav", wav_header(0)), "contains no samples");
}

TEST_F(AudioTest, TruncatedWav) {
  // The header promises 1 s (32000 bytes); 1000 bytes follow.
  expect_error(write_bytes("cut.wav", wav_header(32000) + std::string(1000, '\x01')), "truncated");
  // A bare header that promises samples.
  expect_error(write_bytes("bare.wav", wav_header(32000)), "truncated");
}

TEST_F(AudioTest, AbsurdHeader) {
  std::string header = wav_header(4);
  header.replace(24, 4, std::string("\x01\x00\x00\x00", 4));  // 1 Hz
  expect_error(write_bytes("1hz.wav", header + "abcd"), "sample rate");
}

// Uploads held in memory (HTTP): the same header and samples as the file, and the same errors.
TEST_F(AudioTest, BytesInMemoryDecodeAndProbeAsTheFile) {
  const std::string file = write_audio("mem.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 8000, 1, sine(440, 8000, 4000));
  std::ifstream in(file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const AudioInfo from_file = probe_audio(file), from_bytes = probe_audio_bytes(bytes, "upload");
  EXPECT_EQ(from_bytes.frames, from_file.frames);
  EXPECT_EQ(from_bytes.sample_rate, 8000);
  EXPECT_EQ(decode_audio(bytes, 16000, "upload").samples, read_audio(file, 16000).samples);
  EXPECT_EQ(decode_audio(bytes, 0, "upload").samples, read_audio(file, 0).samples);
  for (const std::string& bad : {std::string(), std::string("not audio, just text long enough to look at")}) {
    try {
      probe_audio_bytes(bad, "upload");
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'upload'"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace wenet_rt
