#include "frontend/cuda/fbank_cuda.h"

#include <cufft.h>

#include <algorithm>
#include <climits>
#include <map>
#include <utility>

#include "backend/cuda/pinned_staging.h"
#include "core/error.h"
#include "frontend/cuda/fbank_kernels.h"

namespace wenet_rt {
namespace {

// The kernels keep one frame / one spectrum row in shared memory (48 KB without opting in).
constexpr int kMaxSharedFloats = 48 * 1024 / 4;
constexpr int kMaxBatch = 65535;  // gridDim.y

void cuda_check(cudaError_t status, const char* call, int line) {
  if (status != cudaSuccess)
    fail("CUDA fbank: {} failed at fbank_cuda.cc:{}: {} ({})", call, line, cudaGetErrorString(status),
         cudaGetErrorName(status));
}

const char* cufft_status_name(cufftResult status) {
  switch (status) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    case CUFFT_UNALIGNED_DATA: return "CUFFT_UNALIGNED_DATA";
    case CUFFT_INVALID_DEVICE: return "CUFFT_INVALID_DEVICE";
    case CUFFT_NO_WORKSPACE: return "CUFFT_NO_WORKSPACE";
    case CUFFT_NOT_IMPLEMENTED: return "CUFFT_NOT_IMPLEMENTED";
    case CUFFT_NOT_SUPPORTED: return "CUFFT_NOT_SUPPORTED";
    default: return "unknown cufftResult";
  }
}

void cufft_check(cufftResult status, const char* call, int line) {
  if (status != CUFFT_SUCCESS)
    fail("CUDA fbank: {} failed at fbank_cuda.cc:{}: {} ({})", call, line, cufft_status_name(status),
         static_cast<int>(status));
}

#define FBANK_CUDA_CHECK(call) cuda_check((call), #call, __LINE__)
#define FBANK_CUFFT_CHECK(call) cufft_check((call), #call, __LINE__)

// Device memory that only grows (no cudaMalloc once the largest batch has been seen).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void reserve(size_t bytes) {
    if (bytes <= bytes_) return;
    if (ptr_) FBANK_CUDA_CHECK(cudaFree(ptr_));
    ptr_ = nullptr;
    bytes_ = 0;
    FBANK_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
    bytes_ = bytes;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Ordered on `stream`, through page-locked staging (a copy straight from pageable memory would
// make the host wait for the stream's earlier work); returns once `host` has been read.
template <typename T>
void upload(DeviceBuffer& buffer, const std::vector<T>& host, cudaStream_t stream, PinnedStaging& staging) {
  buffer.reserve(std::max<size_t>(1, host.size()) * sizeof(T));
  staging.copy(buffer.as<void>(), host.data(), host.size() * sizeof(T), stream);
}

bool is_device_pointer(const void* p) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    cudaGetLastError();  // older runtimes report plain host memory as an error: clear it
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
}

// Frame rows are rounded up to a power of two (>= 64) so that a few cuFFT plans serve all batches.
int64_t bucket_rows(int64_t rows) {
  int64_t bucket = 64;
  while (bucket < rows) bucket <<= 1;
  return bucket;
}

}  // namespace

struct CudaFbank::State {
  DeviceBuffer window, mel_first_bin, mel_offsets, mel_weights;
  DeviceBuffer samples, offsets, frames, frame_rows, spectrum, feats;
  std::map<int64_t, cufftHandle> plans;  // bucket rows -> batched R2C plan
  PinnedStaging staging;
  std::vector<int64_t> offsets_host;
  cudaStream_t stream = nullptr;

  ~State() {
    for (auto& [rows, plan] : plans) cufftDestroy(plan);
  }

  cufftHandle plan_for(int64_t rows, int fft_size) {
    const int64_t bucket = bucket_rows(rows);
    WENET_CHECK(bucket <= INT_MAX, "CUDA fbank: expected at most {} frames in a batch, got {}", INT_MAX, rows);
    auto it = plans.find(bucket);
    if (it != plans.end()) return it->second;
    int n = fft_size, in_embed = fft_size, out_embed = fft_size / 2 + 1;
    cufftHandle plan = 0;
    FBANK_CUFFT_CHECK(cufftPlanMany(&plan, 1, &n, &in_embed, 1, fft_size, &out_embed, 1, fft_size / 2 + 1,
                                    CUFFT_R2C, static_cast<int>(bucket)));
    plans.emplace(bucket, plan);
    return plan;
  }
};

CudaFbank::CudaFbank(const FbankOptions& options) : cpu_(options), state_(std::make_unique<State>()) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    cudaGetLastError();
    fail("CUDA fbank: no CUDA device found");
  }
  WENET_CHECK(cpu_.frame_length() <= kMaxSharedFloats && cpu_.fft_size() / 2 + 1 <= kMaxSharedFloats,
              "CUDA fbank: expected frames of at most {} samples, got {} (FFT size {})", kMaxSharedFloats,
              cpu_.frame_length(), cpu_.fft_size());

  // The CPU Fbank's own tables, so that both implementations weigh exactly the same.
  upload(state_->window, cpu_.window(), nullptr, state_->staging);
  std::vector<int> first_bin(dim()), offsets(dim() + 1, 0);
  std::vector<float> weights;
  for (int m = 0; m < dim(); ++m) {
    const std::vector<float>& w = cpu_.mel_weights(m);
    first_bin[m] = cpu_.mel_first_bin(m);
    weights.insert(weights.end(), w.begin(), w.end());
    offsets[m + 1] = static_cast<int>(weights.size());
  }
  upload(state_->mel_first_bin, first_bin, nullptr, state_->staging);
  upload(state_->mel_offsets, offsets, nullptr, state_->staging);
  upload(state_->mel_weights, weights, nullptr, state_->staging);
  FBANK_CUDA_CHECK(cudaStreamSynchronize(nullptr));
}

CudaFbank::~CudaFbank() = default;
CudaFbank::CudaFbank(CudaFbank&&) noexcept = default;
CudaFbank& CudaFbank::operator=(CudaFbank&&) noexcept = default;

void CudaFbank::compute(const float* samples, const std::vector<int>& lengths, cudaStream_t stream,
                        const std::vector<int64_t>* offsets) {
  WENET_CHECK(state_ != nullptr, "CUDA fbank: compute() on a moved-from object");
  const int batch = static_cast<int>(lengths.size());
  WENET_CHECK(batch <= kMaxBatch, "CUDA fbank: expected at most {} waveforms in a batch, got {}", kMaxBatch, batch);
  State& s = *state_;
  s.stream = stream;

  std::vector<int> frames(batch);
  s.offsets_host.assign(batch, 0);
  int64_t total = 0;
  int max_frames = 0;
  WENET_CHECK(!offsets || offsets->size() == lengths.size(), "CUDA fbank: expected {} offsets, got {}", batch,
              offsets ? offsets->size() : 0);
  for (int b = 0; b < batch; ++b) {
    WENET_CHECK(lengths[b] >= 0, "CUDA fbank: waveform {}: expected a sample count >= 0, got {}", b, lengths[b]);
    if (offsets) {
      WENET_CHECK((*offsets)[b] >= 0, "CUDA fbank: waveform {}: expected an offset >= 0, got {}", b, (*offsets)[b]);
      s.offsets_host[b] = (*offsets)[b];
      total = std::max(total, (*offsets)[b] + lengths[b]);
    } else {
      s.offsets_host[b] = total;
      total += lengths[b];
    }
    frames[b] = num_frames(lengths[b]);
    max_frames = std::max(max_frames, frames[b]);
  }
  WENET_CHECK(total == 0 || samples != nullptr, "CUDA fbank: expected samples for {} values, got a null pointer",
              total);
  frames_ = std::move(frames);
  max_frames_ = max_frames;
  if (batch == 0) return;

  upload(s.frames, frames_, stream, s.staging);
  upload(s.offsets, s.offsets_host, stream, s.staging);
  const int64_t rows = static_cast<int64_t>(batch) * max_frames;
  s.feats.reserve(std::max<int64_t>(1, rows) * dim() * sizeof(float));
  if (max_frames == 0) return;  // every waveform shorter than one frame

  const float* device_samples = samples;
  if (!is_device_pointer(samples)) {
    s.samples.reserve(total * sizeof(float));
    FBANK_CUDA_CHECK(cudaMemcpyAsync(s.samples.as<void>(), samples, total * sizeof(float), cudaMemcpyHostToDevice,
                                     stream));
    device_samples = s.samples.as<float>();
  }

  const int fft_size = cpu_.fft_size();
  const int64_t bucket = bucket_rows(rows);
  cufftHandle plan = s.plan_for(rows, fft_size);
  if (s.frame_rows.bytes() < bucket * fft_size * sizeof(float)) {
    s.frame_rows.reserve(bucket * fft_size * sizeof(float));
    // Rows past this batch's end feed the FFT too: keep them finite.
    FBANK_CUDA_CHECK(cudaMemsetAsync(s.frame_rows.as<void>(), 0, s.frame_rows.bytes(), stream));
  }
  s.spectrum.reserve(bucket * (fft_size / 2 + 1) * sizeof(cufftComplex));

  const fbank_kernels::BatchLayout layout{batch, max_frames, s.frames.as<int>()};
  const FbankOptions& o = options();
  fbank_kernels::FramingParams framing;
  framing.frame_length = cpu_.frame_length();
  framing.frame_shift = cpu_.frame_shift();
  framing.fft_size = fft_size;
  framing.input_scale = o.input_scale;
  framing.remove_dc_offset = o.remove_dc_offset;
  framing.preemph_coeff = o.preemph_coeff;
  fbank_kernels::frame_dc_preemph_window(device_samples, s.offsets.as<int64_t>(), s.window.as<float>(), framing,
                                         layout, s.frame_rows.as<float>(), stream);
  FBANK_CUDA_CHECK(cudaGetLastError());

  FBANK_CUFFT_CHECK(cufftSetStream(plan, stream));
  FBANK_CUFFT_CHECK(cufftExecR2C(plan, s.frame_rows.as<cufftReal>(), s.spectrum.as<cufftComplex>()));

  fbank_kernels::MelParams mel;
  mel.fft_size = fft_size;
  mel.num_bins = dim();
  mel.use_power = o.use_power;
  mel.use_log = o.use_log_fbank;
  mel.log_floor = o.log_floor;
  mel.first_bin = s.mel_first_bin.as<int>();
  mel.offsets = s.mel_offsets.as<int>();
  mel.weights = s.mel_weights.as<float>();
  fbank_kernels::power_mel_log(s.spectrum.as<void>(), mel, layout, s.feats.as<float>(), stream);
  FBANK_CUDA_CHECK(cudaGetLastError());
}

const float* CudaFbank::features() const { return state_ ? state_->feats.as<float>() : nullptr; }

const float* CudaFbank::features(int b) const {
  WENET_CHECK(b >= 0 && b < batch(), "CUDA fbank: expected a waveform index in [0, {}), got {}", batch(), b);
  return features() + static_cast<int64_t>(b) * max_frames_ * dim();
}

const int* CudaFbank::device_frames() const { return state_ ? state_->frames.as<int>() : nullptr; }

std::vector<float> CudaFbank::copy_to_host(int b) const {
  const float* src = features(b);
  std::vector<float> out(static_cast<size_t>(frames_[b]) * dim());
  FBANK_CUDA_CHECK(cudaStreamSynchronize(state_->stream));
  if (!out.empty())
    FBANK_CUDA_CHECK(cudaMemcpy(out.data(), src, out.size() * sizeof(float), cudaMemcpyDeviceToHost));
  return out;
}

std::vector<std::vector<float>> CudaFbank::copy_to_host() const {
  std::vector<std::vector<float>> out;
  for (int b = 0; b < batch(); ++b) out.push_back(copy_to_host(b));
  return out;
}

}  // namespace wenet_rt
