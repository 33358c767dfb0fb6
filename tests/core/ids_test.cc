#include "core/ids.h"

#include <gtest/gtest.h>

#include <set>

namespace caas {
namespace {

TEST(IdsTest, PrefixedSortableAndUniqueEvenWithAFrozenClock) {
  ManualClock clock(FromUnixSeconds(1700000000));
  IdGenerator ids(clock);
  std::string prev;
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    std::string id = ids.Next("tnt");
    ASSERT_TRUE(IsValidId(id, "tnt")) << id;
    ASSERT_GT(id, prev);
    ASSERT_TRUE(seen.insert(id).second);
    prev = id;
  }
  clock.Advance(std::chrono::milliseconds(1));
  EXPECT_GT(ids.Next("tnt"), prev);
}

TEST(IdsTest, ValidatesShape) {
  EXPECT_FALSE(IsValidId("tnt_", "tnt"));
  EXPECT_FALSE(IsValidId("sub_01J0000000000000000000000A", "tnt"));
  EXPECT_FALSE(IsValidId("tnt_01J000000000000000000000IL", "tnt"));  // I, L not Crockford
  EXPECT_TRUE(IsValidId("tnt_01J0000000000000000000000A", "tnt"));
}

TEST(IdsTest, RandomTokensAreLongAndDistinct) {
  std::string a = RandomToken(32), b = RandomToken(32);
  EXPECT_EQ(a.size(), 43u);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace caas
