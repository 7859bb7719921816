// Batches cut by a frame budget over length-sorted utterances: a batch costs its padded size
// (utterances x the longest one), so similar lengths go together and a batch holds as many as
// the budget allows, up to a count cap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace wenet_rt {

// Indices into `lengths`, longest first (equal lengths keep their input order); each batch has at
// most `max_batch` entries and, when it holds more than one, batch size x its longest length <=
// `max_padded`. A single utterance longer than the budget is a batch of its own.
std::vector<std::vector<size_t>> plan_batches(const std::vector<int64_t>& lengths, int max_batch, int64_t max_padded);

}  // namespace wenet_rt
