// GEMM libraries at the model's skinny shapes (issue 13): y[M, N] = x[M, K] W[N, K]^T, single
// thread, as the encoder's linear layers run them. OpenBLAS (cblas_sgemm, what the CPU backend
// used), BLIS (bli_sgemm, strided B), oneDNN (matmul primitive, plain weights and weights
// reordered to its preferred layout once), and the backend's own kernel on prepacked weights.
//   build-13/src/backend/cpu/bench/cpu_gemm_bench --benchmark_filter=... (CPU time is the number
//   to read on a shared machine: --benchmark_counters_tabular=true)
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <memory>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm.h"
#include "backend/cpu/quant.h"
#include "backend/cpu/kernels/kernels.h"
#include "backend/cpu/thread_pool.h"

#ifdef WENET_BENCH_BLIS
#include <blis.h>
#endif
#ifdef WENET_BENCH_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace {

struct Problem {
  int64_t m, n, k;
  std::vector<float> x, w, y;
  explicit Problem(const benchmark::State& s) : m(s.range(0)), n(s.range(1)), k(s.range(2)) {
    std::mt19937 rng(1);
    std::normal_distribution<float> d;
    x.resize(size_t(m * k));
    w.resize(size_t(n * k));
    y.resize(size_t(m * n));
    for (float& v : x) v = d(rng);
    for (float& v : w) v = d(rng);
  }
  void count(benchmark::State& s) const {
    s.counters["GFLOPS"] = benchmark::Counter(double(2 * m * n * k) * double(s.iterations()),
                                              benchmark::Counter::kIsRate);
  }
};

void BM_openblas(benchmark::State& s) {
  Problem p(s);
  openblas_set_num_threads(1);
  for (auto _ : s)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(p.m), int(p.n), int(p.k), 1.f, p.x.data(), int(p.k),
                p.w.data(), int(p.k), 0.f, p.y.data(), int(p.n));
  p.count(s);
}

void wenet_packed(benchmark::State& s, int threads) {
  Problem p(s);
  static wenet_rt::cpu::ThreadPool pool1(1), pool2(2);
  wenet_rt::cpu::ThreadPool& pool = threads == 1 ? pool1 : pool2;
  const int nr = wenet_rt::cpu::pick_nr(p.n);
  std::vector<float> packed(wenet_rt::cpu::packed_floats(p.n, p.k, nr) + 64);
  float* aligned = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(packed.data()) + 63) & ~uintptr_t(63));
  wenet_rt::cpu::pack_nk(p.w.data(), p.k, p.n, p.k, nr, aligned);
  wenet_rt::cpu::PackedB b{aligned, p.n, p.k, nr};
  for (auto _ : s) wenet_rt::cpu::gemm(pool, p.m, p.x.data(), p.k, b, p.y.data(), p.n, {});
  p.count(s);
  s.SetLabel(wenet_rt::cpu::kernels().name);
}
void BM_wenet_packed(benchmark::State& s) { wenet_packed(s, 1); }
// Two threads (wall time is what counts: run with --benchmark_filter=...2t and UseRealTime).
void BM_wenet_packed_2t(benchmark::State& s) { wenet_packed(s, 2); }

// The INT8 path: per-channel int8 weights packed once, activations quantized per row per call.
void BM_wenet_int8(benchmark::State& s) {
  Problem p(s);
  static wenet_rt::cpu::ThreadPool pool(1);
  static wenet_rt::cpu::Arena arena;
  const wenet_rt::cpu::QuantLayout q = wenet_rt::cpu::int8_layout(p.n, p.k);
  auto mem = wenet_rt::cpu::aligned_buffer(q.bytes);
  const wenet_rt::cpu::PackedInt8 w = wenet_rt::cpu::quantize_weights(p.w.data(), p.k, p.n, p.k, q, mem.get());
  for (auto _ : s) {
    arena.reset();
    wenet_rt::cpu::qgemm(pool, wenet_rt::cpu::kernels(), arena, p.m, p.x.data(), p.k, w, p.y.data(), p.n, {});
  }
  p.count(s);
}

#ifdef WENET_BENCH_BLIS
void BM_blis(benchmark::State& s) {
  Problem p(s);
  float one = 1.f, zero = 0.f;
  for (auto _ : s)
    bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, p.m, p.n, p.k, &one, p.x.data(), p.k, 1, p.w.data(), p.k, 1, &zero,
              p.y.data(), p.n, 1);
  p.count(s);
}
#endif

#ifdef WENET_BENCH_DNNL
void dnnl_run(benchmark::State& s, bool prepacked) {
  using namespace dnnl;
  Problem p(s);
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  memory::desc src_md({p.m, p.k}, memory::data_type::f32, memory::format_tag::ab);
  memory::desc w_plain({p.k, p.n}, memory::data_type::f32, memory::format_tag::ba);  // W [N, K] row-major
  memory::desc w_md = prepacked ? memory::desc({p.k, p.n}, memory::data_type::f32, memory::format_tag::any) : w_plain;
  memory::desc dst_md({p.m, p.n}, memory::data_type::f32, memory::format_tag::ab);
  matmul::primitive_desc pd(matmul::desc(src_md, w_md, dst_md), eng);
  memory src(src_md, eng, p.x.data()), dst(dst_md, eng, p.y.data()), w_user(w_plain, eng, p.w.data());
  memory w = w_user;
  if (prepacked && pd.weights_desc() != w_plain) {
    w = memory(pd.weights_desc(), eng);
    reorder(w_user, w).execute(strm, w_user, w);
  }
  matmul prim(pd);
  for (auto _ : s) prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}});
  strm.wait();
  p.count(s);
  s.SetLabel(pd.impl_info_str());
}
void BM_dnnl(benchmark::State& s) { dnnl_run(s, false); }
void BM_dnnl_prepacked(benchmark::State& s) { dnnl_run(s, true); }
#endif

// The subsampling convolutions through the backend op: x [B, C, H, W] -> [B, O, H', W'],
// args: batch, input frames, channels in (1: the first conv), model dim.
void BM_backend_conv2d(benchmark::State& s) {
  const int64_t B = s.range(0), T = s.range(1), C = s.range(2), O = s.range(3);
  auto be = wenet_rt::make_cpu_backend(1);
  const int64_t H = C == 1 ? T : (T - 1) / 2, W = C == 1 ? 80 : 39;
  const int64_t Ho = (H - 3) / 2 + 1, Wo = (W - 3) / 2 + 1;
  wenet_rt::HostTensor hx(wenet_rt::DType::kF32, {B, C, H, W}), hw(wenet_rt::DType::kF32, {O, C, 3, 3}),
      hb(wenet_rt::DType::kF32, {O});
  std::mt19937 rng(1);
  std::normal_distribution<float> d;
  for (auto* t : {&hx, &hw, &hb})
    for (int64_t i = 0; i < t->numel(); ++i) t->data<float>()[i] = d(rng);
  const wenet_rt::Tensor x = be->upload(hx, wenet_rt::DType::kF32), w = be->upload(hw, wenet_rt::DType::kF32),
                         b = be->upload(hb, wenet_rt::DType::kF32);
  for (auto _ : s) {
    be->reset_arena();
    const wenet_rt::Tensor y = be->alloc({B, O, Ho, Wo}, wenet_rt::DType::kF32);
    be->conv2d(x, w, b, 2, true, y);
  }
  s.counters["GFLOPS"] = benchmark::Counter(double(2 * B * O * C * 9 * Ho * Wo) * double(s.iterations()),
                                            benchmark::Counter::kIsRate);
}
BENCHMARK(BM_backend_conv2d)->Args({16, 256, 1, 144})->Args({16, 256, 144, 144})->Args({1, 1000, 144, 144})
    ->Args({4, 256, 256, 256});

// M = frames (16: 1 x 64 fbank frames ... 1024: 16 x 256); (N, K) of the demo model (d 144, FFN
// 576) and the full-size one (d 256, FFN 2048): QKV, d x d, FFN up, FFN down, pointwise conv 1.
void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t m : {16, 64, 256, 1024})
    for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{
             {432, 144}, {144, 144}, {576, 144}, {144, 576}, {288, 144},
             {768, 256}, {256, 256}, {2048, 256}, {256, 2048}, {512, 256}})
      b->Args({m, n, k});
}

}  // namespace

BENCHMARK(BM_openblas)->Apply(shapes);
BENCHMARK(BM_wenet_packed)->Apply(shapes);
BENCHMARK(BM_wenet_packed_2t)->Apply(shapes)->UseRealTime();
// The subsampling's second conv as a GEMM: W [O, 9 C] x im2col [9 C, positions].
BENCHMARK(BM_wenet_packed)->Args({144, 1197, 1296})->Args({256, 1197, 2304});
BENCHMARK(BM_wenet_int8)->Apply(shapes);
#ifdef WENET_BENCH_BLIS
BENCHMARK(BM_blis)->Apply(shapes);
#endif
#ifdef WENET_BENCH_DNNL
BENCHMARK(BM_dnnl)->Apply(shapes);
BENCHMARK(BM_dnnl_prepacked)->Apply(shapes);
BENCHMARK(BM_dnnl_prepacked)->Args({144, 1197, 1296})->Args({256, 1197, 2304});
#endif
BENCHMARK_MAIN();
