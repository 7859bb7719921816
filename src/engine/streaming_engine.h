// The streaming engine behind StreamingRecognizer (include/wenet_rt/streaming.h): many streams,
// one scheduler.
//
//   client threads: accept_waveform() appends audio and computes its fbank frames (Kaldi frames
//                   depend only on their own samples, so frame by frame equals the whole file);
//                   a stream with a full chunk window (or its last, shorter one) joins the ready queue
//   scheduler:      takes up to max_batch ready streams, one chunk each, and runs them through the
//                   chunk-by-chunk encoder together (each stream's attention / conv caches in its
//                   slot of a pool reserved at construction) and the CTC top-k
//   CPU threads:    each stream's prefix beam search goes on over its chunk; endpoint rules
//   scheduler:      utterances that ended (endpoint, end of input, max length) are rescored with
//                   the attention decoder in one batch; partial and final results are delivered
//
// The scheduler is the only user of the backend. Streams belong to their engine: results stop when
// it is destroyed.
#pragma once

#include <memory>

#include "model/model_dir.h"
#include "wenet_rt/streaming.h"

namespace wenet_rt {

class StreamingEngine {
 public:
  // Throws wenet_rt::Error for bad options or a model not trained for streaming.
  StreamingEngine(ModelDir model, const StreamingConfig& config);
  ~StreamingEngine();
  StreamingEngine(const StreamingEngine&) = delete;
  StreamingEngine& operator=(const StreamingEngine&) = delete;

  std::shared_ptr<Stream> create_stream(const StreamOptions& options);
  StreamingStats stats() const;
  const StreamingConfig& config() const;  // with the device's defaults filled in
  const ModelDir& model() const;
  int sample_rate() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace wenet_rt
