// The encoder (+ CTC log-softmax) through the CPU backend, as `wenet-rt bench --device cpu` times
// it, under Google Benchmark: repetitions and CPU time for A/B work on a shared machine.
//   cpu_encoder_bench [--benchmark_repetitions=7] ; args: batch, frames, threads, model (0 demo,
//   1 full-size random), int8
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <tuple>

#include "backend/backend.h"
#include "graph/asr_model.h"
#include "model/model_dir.h"
#include "model/random_model.h"

namespace {

using namespace wenet_rt;

const ModelDir& model(int which) {
  static std::map<int, ModelDir> models;
  auto it = models.find(which);
  if (it == models.end())
    it = models
             .emplace(which, which == 0 ? load_model_dir(std::string(WENET_SOURCE_DIR) + "/models/demo")
                                        : make_random_model(parse_config_text(kFullSizeModelYaml, "full-size"), 0))
             .first;
  return it->second;
}

void BM_encoder(benchmark::State& s) {
  const int B = int(s.range(0)), T = int(s.range(1)), threads = int(s.range(2)), which = int(s.range(3));
  CpuBackendOptions o;
  o.threads = threads;
  o.int8 = s.range(4) != 0;
  auto be = make_cpu_backend(o);
  AsrModel asr(model(which), *be);
  const int F = asr.config().encoder.input_dim;
  HostTensor feats(DType::kF32, {B, T, F});
  std::mt19937 rng(1);
  std::normal_distribution<float> d;
  for (int64_t i = 0; i < feats.numel(); ++i) feats.data<float>()[i] = d(rng);
  const Tensor x = be->upload(feats, DType::kF32);
  std::vector<int> lens(size_t(B), T);
  const auto run = [&] {
    be->reset_arena();
    EncoderOutput enc = asr.encode(x, lens.data());
    asr.ctc_log_probs(enc);
  };
  run();  // weights are packed at their first use, and the arena sized: not timed
  for (auto _ : s) run();
  s.counters["frames/s"] = benchmark::Counter(double(B) * T * double(s.iterations()), benchmark::Counter::kIsRate);
}

void grid(benchmark::internal::Benchmark* b) {
  for (int which : {0, 1})
    for (int threads : {1, 2})
      for (auto [B, T] : std::vector<std::pair<int, int>>{{1, 64}, {1, 256}, {1, 1000}, {4, 256}, {16, 256}})
        for (int int8 : {0, 1}) b->Args({B, T, threads, which, int8});
}

}  // namespace

BENCHMARK(BM_encoder)->Apply(grid)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
