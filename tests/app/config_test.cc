#include "app/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace caas::app {
namespace {

TEST(ConfigTest, DefaultsFileEnvFlagsInThatOrder) {
  auto d = LoadConfig("", {}, {});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->listen, "127.0.0.1:8080");
  EXPECT_EQ(d->data_dir, "./data");

  const auto path = std::filesystem::temp_directory_path() / "caas-config-test.json";
  std::ofstream(path) << R"({"listen": "127.0.0.1:9001", "data_dir": "/tmp/x", "threads": 3})";
  auto f = LoadConfig(path.string(), {}, {});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->listen, "127.0.0.1:9001");
  EXPECT_EQ(f->threads, 3);

  auto e = LoadConfig(path.string(), {}, {{"CAAS_BILLING_LISTEN", "127.0.0.1:9002"}});
  EXPECT_EQ(e->listen, "127.0.0.1:9002");
  EXPECT_EQ(e->data_dir, "/tmp/x");

  Overrides flags;
  flags.listen = "127.0.0.1:9003";
  auto fl = LoadConfig(path.string(), flags, {{"CAAS_BILLING_LISTEN", "127.0.0.1:9002"}});
  EXPECT_EQ(fl->listen, "127.0.0.1:9003");
  std::filesystem::remove(path);
}

TEST(ConfigTest, BadValuesNameTheirSource) {
  auto r = LoadConfig("", {}, {{"CAAS_BILLING_THREADS", "zero"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().field, "CAAS_BILLING_THREADS");
  EXPECT_FALSE(LoadConfig("", {}, {{"CAAS_BILLING_LISTEN", "nohost"}}).ok());
  EXPECT_FALSE(LoadConfig("", {}, {{"CAAS_BILLING_LISTEN", "h:70000"}}).ok());
  EXPECT_FALSE(LoadConfig("/nonexistent/caas.json", {}, {}).ok());
  const auto path = std::filesystem::temp_directory_path() / "caas-config-bad.json";
  std::ofstream(path) << R"({"colour": "blue"})";
  auto b = LoadConfig(path.string(), {}, {});
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().field.find("colour"), std::string::npos);
  std::filesystem::remove(path);
}

TEST(ConfigTest, SchedulerWorkersFromFileAndEnvironmentWithinBounds) {
  EXPECT_EQ(LoadConfig("", {}, {})->scheduler_workers, 32);
  const auto path = std::filesystem::temp_directory_path() / "caas-config-workers.json";
  std::ofstream(path) << R"({"scheduler_workers": 3})";
  EXPECT_EQ(LoadConfig(path.string(), {}, {})->scheduler_workers, 3);
  EXPECT_EQ(
      LoadConfig(path.string(), {}, {{"CAAS_BILLING_SCHEDULER_WORKERS", "16"}})->scheduler_workers,
      16);
  for (const char* bad : {"0", "65", "many"}) {
    auto r = LoadConfig("", {}, {{"CAAS_BILLING_SCHEDULER_WORKERS", bad}});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().field, "CAAS_BILLING_SCHEDULER_WORKERS");
  }
  std::ofstream(path) << R"({"scheduler_workers": 0})";
  EXPECT_FALSE(LoadConfig(path.string(), {}, {}).ok());
  std::filesystem::remove(path);
}

TEST(ConfigTest, StripeSettingsAreCheckedWithoutEchoingSecrets) {
  auto def = LoadConfig("", {}, {});
  EXPECT_TRUE(def->stripe_secret_key.empty());
  EXPECT_EQ(def->stripe_api_base, "https://api.stripe.com");
  EXPECT_EQ(def->stripe_timeout_ms, 30000);
  auto on = LoadConfig("", {},
                       {{"CAAS_BILLING_STRIPE_SECRET_KEY", "sk_test_abc"},
                        {"CAAS_BILLING_STRIPE_WEBHOOK_SECRET", "whsec_abc"},
                        {"CAAS_BILLING_STRIPE_API_BASE", "http://127.0.0.1:9/"},
                        {"CAAS_BILLING_STRIPE_TIMEOUT_MS", "250"}});
  ASSERT_TRUE(on.ok());
  EXPECT_EQ(on->stripe_api_base, "http://127.0.0.1:9");  // no trailing slash
  EXPECT_EQ(on->stripe_timeout_ms, 250);
  const std::pair<const char*, const char*> bad[] = {
      {"CAAS_BILLING_STRIPE_SECRET_KEY", "pk_live_secretvalue1"},
      {"CAAS_BILLING_STRIPE_WEBHOOK_SECRET", "secretvalue2"},
      {"CAAS_BILLING_STRIPE_API_BASE", "ftp://x"},
      {"CAAS_BILLING_STRIPE_TIMEOUT_MS", "99"},
      {"CAAS_BILLING_STRIPE_TIMEOUT_MS", "120001"}};
  for (const auto& [name, value] : bad) {
    auto r = LoadConfig("", {}, {{name, value}});
    ASSERT_FALSE(r.ok()) << name;
    EXPECT_EQ(r.error().field, name);
    EXPECT_EQ(r.error().message.find("secretvalue"), std::string::npos);
  }
}

TEST(ConfigTest, ParseListen) {
  auto l = ParseListen("0.0.0.0:8080");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->first, "0.0.0.0");
  EXPECT_EQ(l->second, 8080);
  EXPECT_EQ(ParseListen("[::1]:80")->first, "::1");
}

}  // namespace
}  // namespace caas::app
