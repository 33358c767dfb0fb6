// One seed rule for every randomized test: CAAS_TEST_SEED=N replays a run
// with seed N; otherwise each run takes a fresh seed. Either way the seed is
// printed with every failure (CAAS_SEED_TRACE).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

namespace caas::testing {

inline uint64_t TestSeed() {
  const char* fixed = std::getenv("CAAS_TEST_SEED");
  return fixed && *fixed ? std::stoull(fixed) : std::random_device{}();
}

}  // namespace caas::testing

#define CAAS_SEED_TRACE(seed)                                                 \
  SCOPED_TRACE("seed=" + std::to_string(seed) + " (replay: CAAS_TEST_SEED=" + \
               std::to_string(seed) + " with --gtest_filter for this test)")
