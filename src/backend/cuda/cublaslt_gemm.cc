#include "backend/cuda/cublaslt_gemm.h"

#include <cstring>
#include <string_view>

#include "backend/cuda/cuda_check.h"

namespace wenet_rt {
namespace {

// Largest power of two (<= 256) dividing the address: cuBLASLt picks kernels by pointer alignment.
int64_t alignment_of(const void* p) {
  if (!p) return 256;
  const auto a = reinterpret_cast<uintptr_t>(p);
  int64_t al = 1;
  while (al < 256 && (a % uintptr_t(al * 2)) == 0) al *= 2;
  return al;
}

cublasLtMatrixLayout_t make_layout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                                   int64_t stride) {
  cublasLtMatrixLayout_t l = nullptr;
  WENET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, uint64_t(rows), uint64_t(cols), ld));
  if (batch > 1) {
    const int32_t count = int32_t(batch);
    WENET_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    WENET_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return l;
}

}  // namespace

struct CublasLtGemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool found = false;
  ~Plan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

bool CublasLtGemm::Key::operator==(const Key& o) const { return std::memcmp(v, o.v, sizeof(v)) == 0; }

size_t CublasLtGemm::KeyHash::operator()(const Key& k) const {
  return std::hash<std::string_view>()(std::string_view(reinterpret_cast<const char*>(k.v), sizeof(k.v)));
}

CublasLtGemm::CublasLtGemm(DType dtype, void* workspace, size_t workspace_bytes)
    : dtype_(dtype), workspace_(workspace), workspace_bytes_(workspace_bytes) {
  WENET_CHECK(dtype == DType::kF16 || dtype == DType::kF32, "cuda gemm: expected float16 or float32, got {}",
              dtype_name(dtype));
  WENET_CUBLAS_CHECK(cublasLtCreate(&handle_));
}

CublasLtGemm::~CublasLtGemm() {
  plans_.clear();
  if (handle_) cublasLtDestroy(handle_);
}

CublasLtGemm::Key CublasLtGemm::make_key(const GemmArgs& g) const {
  Key k{};
  const int64_t vals[20] = {g.trans_a,
                            g.trans_b,
                            g.m,
                            g.n,
                            g.k,
                            g.lda,
                            g.ldb,
                            g.ldd,
                            g.batch,
                            g.batch > 1 ? g.stride_a : 0,
                            g.batch > 1 ? g.stride_b : 0,
                            g.batch > 1 ? g.stride_d : 0,
                            g.bias != nullptr,
                            g.relu,
                            g.beta != 0.f,
                            alignment_of(g.a),
                            alignment_of(g.b),
                            alignment_of(g.d),
                            alignment_of(g.bias),
                            0};
  std::memcpy(k.v, vals, sizeof(vals));
  return k;
}

std::unique_ptr<CublasLtGemm::Plan> CublasLtGemm::make_plan(const GemmArgs& g) const {
  auto p = std::make_unique<Plan>();
  const cudaDataType_t type = dtype_ == DType::kF16 ? CUDA_R_16F : CUDA_R_32F;
  // Plain FP32 compute for both: FP32 accumulation for F16, and no TF32 for F32.
  WENET_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  WENET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  WENET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
  if (g.bias) epi = g.relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  else if (g.relu) epi = CUBLASLT_EPILOGUE_RELU;
  WENET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
  if (g.bias) {
    // The heuristic reads the bias pointer's alignment (part of the key).
    WENET_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
  }
  p->a = g.trans_a ? make_layout(type, g.k, g.m, g.lda, g.batch, g.stride_a)
                   : make_layout(type, g.m, g.k, g.lda, g.batch, g.stride_a);
  p->b = g.trans_b ? make_layout(type, g.n, g.k, g.ldb, g.batch, g.stride_b)
                   : make_layout(type, g.k, g.n, g.ldb, g.batch, g.stride_b);
  p->d = make_layout(type, g.m, g.n, g.ldd, g.batch, g.stride_d);

  cublasLtMatmulPreference_t pref = nullptr;
  WENET_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  struct PrefGuard {
    cublasLtMatmulPreference_t p;
    ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
  } guard{pref};
  const uint64_t ws = workspace_bytes_;
  WENET_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  const uint32_t al_a = uint32_t(alignment_of(g.a)), al_b = uint32_t(alignment_of(g.b)),
                 al_d = uint32_t(alignment_of(g.d));
  WENET_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a)));
  WENET_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b)));
  WENET_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof(al_d)));
  WENET_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof(al_d)));

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle_, p->desc, p->a, p->b, p->d, p->d, pref, 1, &result, &found);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || (st == CUBLAS_STATUS_SUCCESS && found == 0)) return p;  // !found
  WENET_CUBLAS_CHECK(st);
  p->algo = result.algo;
  p->found = true;
  return p;
}

bool CublasLtGemm::run(const GemmArgs& g, cudaStream_t stream) {
  const Key key = make_key(g);
  auto it = plans_.find(key);
  if (it == plans_.end()) it = plans_.emplace(key, make_plan(g)).first;
  Plan& p = *it->second;
  if (!p.found) return false;
  if (g.bias)
    WENET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
  WENET_CUBLAS_CHECK(cublasLtMatmul(handle_, p.desc, &g.alpha, g.a, p.a, g.b, p.b, &g.beta, g.d, p.d, g.d, p.d, &p.algo,
                                    workspace_, workspace_bytes_, stream));
  return true;
}

}  // namespace wenet_rt
