// Frame-budget batching: sorted longest first, each batch within the budget and the count cap,
// every utterance exactly once.
#include <gtest/gtest.h>

#include <random>

#include "common/expect_error.h"
#include "engine/batch_plan.h"

namespace wenet_rt {
namespace {

using Plan = std::vector<std::vector<size_t>>;

TEST(BatchPlan, SortsLongestFirstAndCutsByBudgetAndCap) {
  EXPECT_EQ(plan_batches({5, 30, 10, 30, 20}, 2, 60), (Plan{{1, 3}, {4, 2}, {0}}));
  EXPECT_EQ(plan_batches({100, 100, 100, 100, 100}, 10, 250), (Plan{{0, 1}, {2, 3}, {4}}));
  EXPECT_EQ(plan_batches({100, 100, 100}, 10, 1000), (Plan{{0, 1, 2}}));
  EXPECT_TRUE(plan_batches({}, 4, 100).empty());
}

TEST(BatchPlan, AnUtteranceOverTheBudgetIsABatchOfItsOwn) {
  EXPECT_EQ(plan_batches({10, 1000, 10}, 8, 100), (Plan{{1}, {0, 2}}));
}

TEST(BatchPlan, RandomLengthsKeepEveryInvariant) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<int64_t> lengths(size_t(rng() % 300));
    for (auto& l : lengths) l = 100 + int64_t(rng() % 2000);
    const int cap = 1 + int(rng() % 64);
    const int64_t budget = 500 + int64_t(rng() % 40000);
    const Plan plan = plan_batches(lengths, cap, budget);
    std::vector<int> seen(lengths.size(), 0);
    int64_t previous = INT64_MAX;
    for (const auto& b : plan) {
      ASSERT_FALSE(b.empty());
      EXPECT_LE(int(b.size()), cap);
      if (b.size() > 1) EXPECT_LE(int64_t(b.size()) * lengths[b[0]], budget);
      // The next batch could not have taken this one's first utterance.
      for (size_t i = 0; i < b.size(); ++i) {
        EXPECT_LE(lengths[b[i]], previous);
        previous = lengths[b[i]];
        ++seen[b[i]];
      }
    }
    for (int s : seen) EXPECT_EQ(s, 1);
  }
}

TEST(BatchPlan, BadArgumentsAreErrors) {
  testing::expect_error([] { plan_batches({1}, 0, 100); }, {"max_batch", "0"});
  testing::expect_error([] { plan_batches({1}, 1, 0); }, {"budget", "0"});
}

}  // namespace
}  // namespace wenet_rt
