// A Stream (wenet_rt/streaming.h) for models that cannot stream: audio is gathered until
// input_finished(), then recognized as one utterance through the RequestBatcher (batched with
// other streams and HTTP requests), giving one final result and no partials. This is how WeNet's
// runtime serves a non-streaming model over its WebSocket protocol (decoding_chunk_size -1).
#pragma once

#include <memory>

#include "engine/request_batcher.h"
#include "wenet_rt/streaming.h"

namespace wenet_rt {

// `batcher` must outlive the stream's last result.
std::shared_ptr<Stream> make_offline_stream(RequestBatcher& batcher, const StreamOptions& options);

}  // namespace wenet_rt
