#include "wenet_rt/recognizer.h"

#include "core/error.h"
#include "engine/offline_engine.h"
#include "model/model_dir.h"

namespace wenet_rt {

Recognizer::Recognizer(const std::string& model_dir, const RecognizerConfig& config)
    : engine_(std::make_unique<OfflineEngine>(load_model_dir(model_dir), config)) {}
Recognizer::~Recognizer() = default;

int Recognizer::sample_rate() const { return engine_->sample_rate(); }

std::string Recognizer::describe() const {
  return wenet_rt::describe(engine_->model()) + "\n" + engine_->config().describe();
}

std::vector<RecognitionResult> Recognizer::recognize_files(const std::vector<std::pair<std::string, std::string>>& files,
                                                           const std::function<void(size_t, size_t)>& progress) {
  std::vector<EngineInput> inputs(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    inputs[i].key = files[i].first;
    inputs[i].path = files[i].second;
  }
  return engine_->run(std::move(inputs), progress);
}

std::vector<RecognitionResult> Recognizer::recognize_samples(const std::vector<AudioView>& views,
                                                             const std::function<void(size_t, size_t)>& progress) {
  std::vector<EngineInput> inputs(views.size());
  for (size_t i = 0; i < views.size(); ++i) {
    inputs[i].key = views[i].key;
    inputs[i].borrowed = views[i].samples;
    inputs[i].borrowed_size = views[i].samples ? views[i].num_samples : 0;
    inputs[i].sample_rate = views[i].sample_rate;
  }
  return engine_->run(std::move(inputs), progress);
}

RecognitionResult Recognizer::recognize(const std::string& key, const std::vector<float>& samples, int rate) {
  std::vector<EngineInput> in(1);
  in[0].key = key;
  in[0].samples = samples;
  in[0].sample_rate = rate;
  RecognitionResult r = std::move(engine_->run(std::move(in))[0]);
  // One utterance given directly: its failure is the call's.
  if (!r.error.empty()) throw Error(r.error);
  return r;
}

}  // namespace wenet_rt
