#include "engine/batch_plan.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace wenet_rt {

std::vector<std::vector<size_t>> plan_batches(const std::vector<int64_t>& lengths, int max_batch, int64_t max_padded) {
  WENET_CHECK(max_batch >= 1, "plan_batches: expected max_batch >= 1, got {}", max_batch);
  WENET_CHECK(max_padded >= 1, "plan_batches: expected a frame budget >= 1, got {}", max_padded);
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
  std::vector<std::vector<size_t>> batches;
  for (size_t i = 0; i < order.size();) {
    // Sorted longest first: the batch's first utterance sets its padded length.
    const int64_t longest = std::max<int64_t>(1, lengths[order[i]]);
    const size_t fit = size_t(std::clamp<int64_t>(max_padded / longest, 1, max_batch));
    const size_t end = std::min(order.size(), i + fit);
    batches.emplace_back(order.begin() + long(i), order.begin() + long(end));
    i = end;
  }
  return batches;
}

}  // namespace wenet_rt
