#include "engine/streaming_engine.h"
#include "model/model_dir.h"
#include "wenet_rt/streaming.h"

namespace wenet_rt {

// The public face of the streaming engine (src/engine/streaming_engine.h).
struct StreamingRecognizer::Impl {
  Impl(ModelDir model, const StreamingConfig& config) : engine(std::move(model), config) {}
  StreamingEngine engine;
};

StreamingRecognizer::StreamingRecognizer(const std::string& model_dir, const StreamingConfig& config)
    : impl_(std::make_unique<Impl>(load_model_dir(model_dir), config)) {}
StreamingRecognizer::~StreamingRecognizer() = default;

std::shared_ptr<Stream> StreamingRecognizer::create_stream(const StreamOptions& options) {
  return impl_->engine.create_stream(options);
}
int StreamingRecognizer::sample_rate() const { return impl_->engine.sample_rate(); }
std::string StreamingRecognizer::describe() const {
  return wenet_rt::describe(impl_->engine.model()) + "\n" + impl_->engine.config().describe();
}
StreamingStats StreamingRecognizer::stats() const { return impl_->engine.stats(); }
const StreamingConfig& StreamingRecognizer::config() const { return impl_->engine.config(); }

}  // namespace wenet_rt
