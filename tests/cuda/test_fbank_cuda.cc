// CudaFbank against the CPU Fbank (itself checked against kaldi-native-fbank in test_fbank):
// WAVs of tests/data/frontend and random signals of many lengths (0, shorter than one frame, at
// frame boundaries, long) in one batch. Contract: max |cuda - cpu| <= 1e-3 on log-mel values
// (only the FFT differs, cuFFT vs kissfft: expect ~1e-4 in the quietest bins, as kissfft vs
// kaldi-native-fbank measures in test_fbank).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/cuda_device.h"
#include "core/error.h"
#include "frontend/audio.h"
#include "frontend/cuda/fbank_cuda.h"
#include "frontend/fbank.h"

namespace wenet_rt {
namespace {

const std::string kDataDir = std::string(WENET_TEST_DATA) + "/frontend/";
constexpr double kLogMelTolerance = 1e-3;

using testing::have_cuda_device;

struct Batch {
  std::vector<std::string> names;
  std::vector<float> samples;  // back to back
  std::vector<int> lengths;

  void add(const std::string& name, const std::vector<float>& wave) {
    names.push_back(name);
    samples.insert(samples.end(), wave.begin(), wave.end());
    lengths.push_back(static_cast<int>(wave.size()));
  }
  const float* wave(int b) const {
    size_t offset = 0;
    for (int i = 0; i < b; ++i) offset += lengths[i];
    return samples.data() + offset;
  }
};

// Noise plus a sine, loudness varying with the length, so that no two signals look alike.
std::vector<float> random_signal(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> noise(-1.f, 1.f);
  const float amplitude = 0.05f + 0.9f * static_cast<float>(seed % 7) / 7.f;
  const float freq = 100.f + 37.f * static_cast<float>(seed % 50);
  std::vector<float> wave(n);
  for (int i = 0; i < n; ++i)
    wave[i] = amplitude * (0.3f * noise(rng) + 0.6f * std::sin(6.2831853f * freq * i / 16000.f)) + 0.01f;
  return wave;
}

// Every distinct 16 kHz WAV of the frontend test data, then random signals of awkward lengths.
Batch wavs_and_random_signals() {
  Batch batch;
  std::ifstream in(kDataDir + "manifest.json");
  const nlohmann::json manifest = nlohmann::json::parse(in);
  std::set<std::string> seen;
  for (const auto& c : manifest["cases"]) {
    const std::string wav = c["wav"];
    if (c["sample_rate"].get<int>() != 16000 || !seen.insert(wav).second) continue;
    batch.add(wav, read_audio(kDataDir + wav, 16000).samples);
  }
  const int lengths[] = {0, 399, 400, 401, 559, 560, 561, 1234, 4000, 16000, 48037};
  unsigned seed = 1;
  for (int n : lengths) batch.add("random_" + std::to_string(n), random_signal(n, seed++));
  return batch;
}

// Compares every waveform's features with the CPU Fbank's; returns the largest difference.
double expect_matches_cpu(const CudaFbank& gpu, const Fbank& cpu, const Batch& batch, double tolerance,
                          bool relative = false) {
  EXPECT_EQ(gpu.batch(), static_cast<int>(batch.lengths.size()));
  const std::vector<std::vector<float>> got = gpu.copy_to_host();
  double worst = 0;
  for (int b = 0; b < gpu.batch(); ++b) {
    SCOPED_TRACE(batch.names[b]);
    std::vector<float> expected;
    cpu.compute(batch.wave(b), batch.lengths[b], expected);
    EXPECT_EQ(gpu.frames()[b], cpu.num_frames(batch.lengths[b]));
    EXPECT_EQ(got[b].size(), expected.size());
    if (got[b].size() != expected.size()) continue;
    double max_diff = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      double diff = std::abs(double(got[b][i]) - expected[i]);
      if (relative) diff /= std::max(1.0, std::abs(double(expected[i])));
      max_diff = std::max(max_diff, diff);
    }
    std::printf("[ fbank-cuda ] %-22s %6d samples %4d frames: max |diff| %.3g\n", batch.names[b].c_str(),
                batch.lengths[b], gpu.frames()[b], max_diff);
    EXPECT_LE(max_diff, tolerance);
    worst = std::max(worst, max_diff);
  }
  return worst;
}

std::vector<float> all_features(const CudaFbank& gpu) {
  std::vector<float> all(static_cast<size_t>(gpu.batch()) * gpu.max_frames() * gpu.dim());
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  if (!all.empty())
    EXPECT_EQ(cudaMemcpy(all.data(), gpu.features(), all.size() * sizeof(float), cudaMemcpyDeviceToHost),
              cudaSuccess);
  return all;
}

TEST(CudaFbank, ThrowsWithoutDevice) {
  if (have_cuda_device()) GTEST_SKIP() << "a CUDA device is present: the no-device error cannot be shown";
  try {
    CudaFbank fbank;
    FAIL() << "CudaFbank constructed without a device";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
}

TEST(CudaFbank, MatchesCpuOnWavsAndRandomSignalsInOneBatch) {
  SKIP_WITHOUT_GPU();
  const Batch batch = wavs_and_random_signals();
  const Fbank cpu;
  CudaFbank gpu;
  gpu.compute(batch.samples.data(), batch.lengths);
  expect_matches_cpu(gpu, cpu, batch, kLogMelTolerance);

  // The padded layout: batch x max_frames x dim, rows past each waveform's end are zero.
  int max_frames = 0;
  for (int n : batch.lengths) max_frames = std::max(max_frames, cpu.num_frames(n));
  ASSERT_EQ(gpu.max_frames(), max_frames);
  const std::vector<float> all = all_features(gpu);
  for (int b = 0; b < gpu.batch(); ++b) {
    EXPECT_EQ(gpu.features(b), gpu.features() + static_cast<size_t>(b) * max_frames * gpu.dim());
    for (int t = gpu.frames()[b]; t < max_frames; ++t)
      for (int d = 0; d < gpu.dim(); ++d)
        ASSERT_EQ(all[(static_cast<size_t>(b) * max_frames + t) * gpu.dim() + d], 0.f) << b << " " << t;
  }
  std::vector<int> frames(gpu.batch());
  ASSERT_EQ(cudaMemcpy(frames.data(), gpu.device_frames(), frames.size() * sizeof(int), cudaMemcpyDeviceToHost),
            cudaSuccess);
  EXPECT_EQ(frames, gpu.frames());
}

TEST(CudaFbank, DeviceInputOnAStreamMatchesHostInput) {
  SKIP_WITHOUT_GPU();
  const Batch batch = wavs_and_random_signals();
  CudaFbank gpu;
  gpu.compute(batch.samples.data(), batch.lengths);
  const std::vector<float> from_host = all_features(gpu);

  void* device_memory = nullptr;
  ASSERT_EQ(cudaMalloc(&device_memory, batch.samples.size() * sizeof(float)), cudaSuccess);
  float* device_samples = static_cast<float*>(device_memory);
  ASSERT_EQ(cudaMemcpy(device_samples, batch.samples.data(), batch.samples.size() * sizeof(float),
                       cudaMemcpyHostToDevice),
            cudaSuccess);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  gpu.compute(device_samples, batch.lengths, stream);
  const std::vector<std::vector<float>> per_wave = gpu.copy_to_host();  // waits for the stream
  const std::vector<float> from_device = all_features(gpu);
  cudaStreamDestroy(stream);
  cudaFree(device_samples);
  EXPECT_EQ(from_device, from_host);  // the same plan and kernels: bit for bit
  for (int b = 0; b < gpu.batch(); ++b)
    EXPECT_EQ(per_wave[b].size(), static_cast<size_t>(gpu.frames()[b]) * gpu.dim());
}

TEST(CudaFbank, BatchesOfChangingSizesReuseTheObject) {
  SKIP_WITHOUT_GPU();
  const Batch big = wavs_and_random_signals();
  Batch small, only_short;
  small.add("random_3000", random_signal(3000, 99));
  only_short.add("random_100", random_signal(100, 7));  // no frame at all
  only_short.add("random_300", random_signal(300, 8));
  const Fbank cpu;
  CudaFbank gpu;
  for (const Batch* batch : std::vector<const Batch*>{&big, &small, &only_short, &big, &small}) {
    gpu.compute(batch->samples.data(), batch->lengths);
    expect_matches_cpu(gpu, cpu, *batch, kLogMelTolerance);
  }
  EXPECT_EQ(gpu.max_frames(), cpu.num_frames(3000));
  gpu.compute(nullptr, {});  // an empty batch is no error
  EXPECT_EQ(gpu.batch(), 0);
  EXPECT_EQ(gpu.max_frames(), 0);
}

TEST(CudaFbank, DigitalSilenceHitsTheLogFloor) {
  SKIP_WITHOUT_GPU();
  CudaFbank gpu;
  const std::vector<float> zeros(1600, 0.f);
  gpu.compute(zeros.data(), {1600});
  const std::vector<float> feats = gpu.copy_to_host(0);
  ASSERT_EQ(feats.size(), 8u * 80);
  for (float v : feats) EXPECT_FLOAT_EQ(v, std::log(FLT_EPSILON));
}

TEST(CudaFbank, MatchesCpuUnderOtherOptions) {
  SKIP_WITHOUT_GPU();
  const Batch batch = wavs_and_random_signals();
  std::vector<std::pair<std::string, FbankOptions>> cases;
  FbankOptions o;
  o.num_mel_bins = 40;
  cases.emplace_back("40 bins", o);
  o = {};
  o.window = WindowType::kHamming;
  o.remove_dc_offset = false;
  o.preemph_coeff = 0.f;
  cases.emplace_back("hamming, no dc, no preemph", o);
  o = {};
  o.window = WindowType::kRectangular;
  o.round_to_power_of_two = false;  // a 400-point FFT
  o.num_mel_bins = 23;
  o.low_freq = 64.f;
  o.high_freq = -400.f;
  cases.emplace_back("rectangular, 400-point fft", o);
  o = {};
  o.window = WindowType::kHanning;
  o.frame_length_ms = 32.f;
  o.frame_shift_ms = 8.f;
  cases.emplace_back("hanning 32/8 ms", o);
  for (const auto& [name, options] : cases) {
    SCOPED_TRACE(name);
    const Fbank cpu(options);
    CudaFbank gpu(options);
    gpu.compute(batch.samples.data(), batch.lengths);
    expect_matches_cpu(gpu, cpu, batch, kLogMelTolerance);
  }
  // Linear energies are large (x32768 scaling): compare them relative to their size.
  o = {};
  o.use_log_fbank = false;
  o.use_power = false;
  SCOPED_TRACE("magnitude, no log");
  const Fbank cpu(o);
  CudaFbank gpu(o);
  gpu.compute(batch.samples.data(), batch.lengths);
  expect_matches_cpu(gpu, cpu, batch, kLogMelTolerance, /*relative=*/true);
}

TEST(CudaFbank, RejectsBadInput) {
  SKIP_WITHOUT_GPU();
  CudaFbank gpu;
  const std::vector<float> wave(1000, 0.f);
  EXPECT_THROW(gpu.compute(wave.data(), {500, -1}), Error);
  EXPECT_THROW(gpu.compute(nullptr, {1000}), Error);
  FbankOptions bad;
  bad.num_mel_bins = 1;
  EXPECT_THROW(CudaFbank{bad}, Error);
}

// Not a contract: prints the time of one batch (16 x 10 s) on the GPU and on one CPU thread.
TEST(CudaFbank, PrintsTimings) {
  SKIP_WITHOUT_GPU();
  Batch batch;
  for (int b = 0; b < 16; ++b) batch.add("random", random_signal(160000, 100 + b));
  CudaFbank gpu;
  gpu.compute(batch.samples.data(), batch.lengths);  // plans and buffers
  float* device_samples = nullptr;
  void* memory = nullptr;
  ASSERT_EQ(cudaMalloc(&memory, batch.samples.size() * sizeof(float)), cudaSuccess);
  device_samples = static_cast<float*>(memory);
  ASSERT_EQ(cudaMemcpy(device_samples, batch.samples.data(), batch.samples.size() * sizeof(float),
                       cudaMemcpyHostToDevice),
            cudaSuccess);
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  constexpr int kIterations = 20;
  float device_ms = 0, host_ms = 0;
  cudaEventRecord(start);
  for (int i = 0; i < kIterations; ++i) gpu.compute(device_samples, batch.lengths);
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  cudaEventElapsedTime(&device_ms, start, stop);
  cudaEventRecord(start);
  for (int i = 0; i < kIterations; ++i) gpu.compute(batch.samples.data(), batch.lengths);
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  cudaEventElapsedTime(&host_ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(memory);
  const Fbank cpu;
  std::vector<float> feats;
  const auto t0 = std::chrono::steady_clock::now();
  for (int b = 0; b < 16; ++b) cpu.compute(batch.wave(b), batch.lengths[b], feats);
  const double cpu_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ fbank-cuda ] 16 x 10 s (%d frames each): gpu %.3f ms (device input), %.3f ms (host input), "
              "cpu 1 thread %.1f ms\n",
              gpu.frames()[0], device_ms / kIterations, host_ms / kIterations, cpu_ms);
}

}  // namespace
}  // namespace wenet_rt
