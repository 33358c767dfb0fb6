#include "core/text.h"

#include <gtest/gtest.h>

namespace caas {
namespace {

TEST(TextTest, Emails) {
  for (const char* ok : {"billing@acme.com", "a.b+c@sub.example.org", "x@y.io"}) {
    EXPECT_TRUE(IsPlausibleEmail(ok)) << ok;
  }
  for (const char* bad : {"", "acme.com", "@acme.com", "a@", "a@b", "a@b.c", "a..b@c.com",
                          ".a@c.com", "a@-b.com", "a@b-.com", "a b@c.com", "a@b.c0m", "a@@b.com"}) {
    EXPECT_FALSE(IsPlausibleEmail(bad)) << bad;
  }
  EXPECT_FALSE(IsPlausibleEmail(std::string(65, 'a') + "@b.com"));
}

TEST(TextTest, CountsCodePointsAndFindsControls) {
  EXPECT_EQ(CodePointCount("Zoë"), 3u);
  EXPECT_TRUE(HasControlCharacters("a\nb"));
  EXPECT_TRUE(HasControlCharacters("a\xC2\x85"));  // NEL
  EXPECT_FALSE(HasControlCharacters("Zoë GmbH"));
}

}  // namespace
}  // namespace caas
