#include "metering/dedupe_index.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <random>
#include <string>

#include "test_seed.h"

namespace caas::metering {
namespace {

uint64_t H(const std::string& k, uint64_t seed) {
  return XXH3_64bits_withSeed(k.data(), k.size(), seed);
}

// Grows every shard several times (incremental migrations included) and
// checks after every insert batch that all keys are found, with their own
// entry, and that absent keys are not.
TEST(DedupeIndex, ExactThroughGrowthAndMigration) {
  const uint64_t seed = caas::testing::TestSeed();
  CAAS_SEED_TRACE(seed);
  DedupeIndex index;
  std::vector<std::string> keys;
  std::vector<uint32_t> refs;
  for (int i = 0; i < 400'000; ++i) {
    keys.push_back("tenant\x1fsource\x1f" + std::to_string(static_cast<uint64_t>(i) * 7919 + 13));
    const uint64_t h = H(keys.back(), seed);
    ASSERT_EQ(index.Find(h, keys.back()), DedupeIndex::kNone);
    bool inserted = false;
    refs.push_back(
        index.FindOrInsert(h, keys.back(), static_cast<uint64_t>(i), Fingerprint{1, 2}, &inserted));
    ASSERT_TRUE(inserted);
    if (i % 7 == 0 && i > 0) {  // an earlier key again: found, not added
      const size_t j = static_cast<size_t>(i) / 2;
      bool inserted = true;
      ASSERT_EQ(index.FindOrInsert(H(keys[j], seed), keys[j], 0, {}, &inserted), refs[j]);
      ASSERT_FALSE(inserted);
    }
    if (i % 50'000 == 49'999) {
      for (size_t j = 0; j < keys.size(); ++j) {
        ASSERT_EQ(index.Find(H(keys[j], seed), keys[j]), refs[j]) << j;
      }
    }
  }
  EXPECT_EQ(index.size(), keys.size());
  for (size_t j = 0; j < keys.size(); j += 997) {
    const DedupeEntry& e = index.entry(refs[j]);
    EXPECT_EQ(e.lsn, j);
    EXPECT_EQ(DedupeIndex::key(e), keys[j]);
    const std::string absent = keys[j] + "x";
    EXPECT_EQ(index.Find(H(absent, seed), absent), DedupeIndex::kNone);
  }
}

// Equal hashes, different keys: the full key decides.
TEST(DedupeIndex, SameHashDifferentKeys) {
  DedupeIndex index;
  bool inserted = false;
  const uint32_t a = index.FindOrInsert(42, "a", 1, {}, &inserted);
  EXPECT_TRUE(inserted);
  EXPECT_EQ(index.Find(42, "b"), DedupeIndex::kNone);
  const uint32_t b = index.FindOrInsert(42, "b", 2, {}, &inserted);
  EXPECT_TRUE(inserted);
  EXPECT_NE(a, b);
  EXPECT_EQ(index.Find(42, "a"), a);
  EXPECT_EQ(index.Find(42, "b"), b);
}

}  // namespace
}  // namespace caas::metering
