// The offline recognition engine: many recordings in, one result each, as fast as the device
// allows. Everything the public Recognizer does happens here; the CLI, the bench and (later) the
// server and the Python package are thin clients of it.
//
//   plan:  headers probed on CPU threads; recordings over max_segment_seconds decoded and split at
//          pauses; utterances sorted by length and cut into batches by a frame budget
//   read:  CPU threads decode each batch's audio (two batches ahead) into page-locked staging
//   GPU:   fbank + CMVN (batched, on the device) -> encoder -> CTC log-softmax + top-k
//   CPU:   CTC prefix beam search per utterance, over the top-k only
//   GPU:   attention rescoring: decoder + vocabulary projection + log-softmax + gather of each
//          hypothesis' own tokens, so only [hyps, length] scores come back
//
// The device encodes batch k + 1 while CPU threads search batch k, then rescores batch k while
// they search batch k + 1; per-batch host and device buffers are reused (a ring of three), so a
// steady state allocates nothing per batch. Nothing vocabulary-sized crosses to the host.
//
// A server feeds run_jobs() instead: jobs (groups of inputs) enter the same pipeline while earlier
// ones are still in it, each finished as soon as its last batch is.
//
// Not thread-safe: one run() or run_jobs() at a time (it uses every thread it was given).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/model_dir.h"
#include "wenet_rt/recognizer.h"

namespace wenet_rt {

struct EngineInput {
  std::string key;
  std::string path;            // an audio file; when empty, the encoded file or the samples below
  std::string encoded;         // a whole audio file in memory (WAV, FLAC, ...; an HTTP upload),
                               // decoded by the engine's threads while planning
  std::vector<float> samples;  // normalized floats at sample_rate
  // Or samples borrowed from the caller (who keeps them alive until run() returns), used in place
  // when already at the model's rate: no copy.
  const float* borrowed = nullptr;
  size_t borrowed_size = 0;
  int sample_rate = 0;
};

// Inputs recognized together, and where their results go: `done` (on the engine's thread, once all
// are recognized; keep it short), `progress(done, total)` after each of its batches.
struct EngineJob {
  std::vector<EngineInput> inputs;
  std::function<void(std::vector<RecognitionResult>)> done;
  std::function<void(size_t, size_t)> progress;
};

// Where the time of the last run() went. CPU stages are summed over threads (they run in
// parallel, so may add up to more than the wall time); device stages are device time (CUDA events)
// on cuda and the driver thread's time on cpu; waits are the driver thread's.
struct EngineStats {
  size_t inputs = 0, segments = 0, batches = 0, failed = 0;
  int max_batch = 0;
  double audio_s = 0, wall_s = 0;
  double plan_s = 0;                                     // probing headers, splitting long recordings
  double read_s = 0, fbank_cpu_s = 0, search_s = 0, finalize_s = 0;  // CPU threads (finalize: timestamps)
  double frontend_ms = 0, encoder_ms = 0, ctc_ms = 0, rescoring_ms = 0;  // device
  double wait_read_s = 0, wait_search_s = 0, wait_device_s = 0;  // driver (search: CPU tasks)
  size_t peak_rss_bytes = 0, device_bytes = 0, cuda_graphs = 0;
  bool device_timed = false;  // device stages are device time (else driver time)

  double device_busy() const { return wall_s > 0 ? (frontend_ms + encoder_ms + ctc_ms + rescoring_ms) / 1e3 / wall_s : 0; }
  std::string describe() const;  // a few lines for people
};

class OfflineEngine {
 public:
  OfflineEngine(ModelDir model, const RecognizerConfig& config);
  ~OfflineEngine();
  OfflineEngine(const OfflineEngine&) = delete;
  OfflineEngine& operator=(const OfflineEngine&) = delete;

  // Results in input order. Per-input failures (unreadable, empty, too short) are reported in
  // RecognitionResult::error and the rest goes on; `progress(done, total)` is called after each
  // batch with utterances (or segments) done.
  std::vector<RecognitionResult> run(std::vector<EngineInput> inputs,
                                     const std::function<void(size_t, size_t)>& progress = {});

  // Runs jobs as `next` supplies them until it returns std::nullopt, then finishes those in flight.
  // `next(wait)`: with `wait` set nothing is in flight, and it may block until a job comes; without,
  // it returns at once, a job with no inputs when none is ready. Results go to each job's `done`.
  void run_jobs(const std::function<std::optional<EngineJob>(bool wait)>& next);

  const EngineStats& stats() const;  // of the last run
  const ModelDir& model() const;
  const RecognizerConfig& config() const;  // with the device's defaults filled in
  int sample_rate() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wenet_rt
