#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "core/clock.h"
#include "http/idempotency.h"
#include "http/json_input.h"
#include "http/message.h"
#include "http/metrics.h"
#include "http/problem.h"
#include "storage/memory/memory_store.h"

namespace caas::http {
namespace {
namespace json = boost::json;

TEST(TargetTest, SplitsAndDecodes) {
  std::string path;
  std::vector<std::pair<std::string, std::string>> q;
  ASSERT_TRUE(ParseTarget("/v1/tenants?limit=2&starting_after=tnt_1&x=a%20b+c", &path, &q));
  EXPECT_EQ(path, "/v1/tenants");
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[2].second, "a b c");
  EXPECT_FALSE(ParseTarget("/v1/%zz", &path, &q));
  EXPECT_FALSE(ParseTarget("/v1/%2", &path, &q));
}

TEST(JsonInputTest, ReportsWhereParsingFailed) {
  auto r = ParseJsonObject("{\n  \"a\": tru\n}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("line 2"), std::string::npos) << r.error().message;
  EXPECT_FALSE(ParseJsonObject("[1,2]").ok());
  EXPECT_FALSE(ParseJsonObject("").ok());
  EXPECT_FALSE(ParseJsonObject("{} {}").ok());
  std::string deep(40, '[');
  EXPECT_FALSE(ParseJsonObject("{\"a\":" + deep + std::string(40, ']') + "}").ok());
}

TEST(JsonInputTest, ReaderNamesWrongMissingAndUnknownFields) {
  auto o = ParseJsonObject(R"({"name": 5, "extra": true, "address": {"city": 1}})");
  ASSERT_TRUE(o.ok());
  std::vector<Error> errors;
  ObjectReader r(*o, errors);
  EXPECT_FALSE(r.String("name", true));
  EXPECT_FALSE(r.String("email", true));
  const json::object* a = r.Object("address", false);
  ASSERT_NE(a, nullptr);
  ObjectReader ar(*a, errors, "address.");
  EXPECT_FALSE(ar.String("city", true));
  r.RejectUnknown();
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].field, "name");
  EXPECT_EQ(errors[0].message, "must be a string, got a number");
  EXPECT_EQ(errors[1].field, "email");
  EXPECT_EQ(errors[1].message, "is required");
  EXPECT_EQ(errors[2].field, "address.city");
  EXPECT_EQ(errors[3].field, "extra");
  EXPECT_EQ(errors[3].message, "is not a known field");
}

TEST(ProblemTest, Rfc9457Shape) {
  Response r = ProblemFromError(Error::Invalid("billing_email", "must be an e-mail address"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "application/problem+json");
  json::object o = json::parse(r.body).as_object();
  EXPECT_EQ(o.at("status").as_int64(), 400);
  EXPECT_EQ(o.at("type").as_string(), "urn:caas-billing:problem:invalid-request");
  EXPECT_EQ(o.at("errors").as_array()[0].as_object().at("field").as_string(), "billing_email");
  EXPECT_EQ(ProblemFromError(Error::NotFound("x")).status, 404);
  EXPECT_EQ(
      ProblemFromError(Error::Make(ErrorCode::kInternal, "secret detail")).body.find("secret"),
      std::string::npos);
}

TEST(MetricsTest, RendersPrometheusHistograms) {
  Metrics m;
  const size_t r = m.RegisterRoute("GET", "/v1/tenants/{id}");
  m.Observe(r, 200, 300);
  m.Observe(r, 404, 2000000);
  const std::string text = m.Render();
  EXPECT_NE(
      text.find(R"(caas_http_requests_total{method="GET",route="/v1/tenants/{id}",code="2xx"} 1)"),
      std::string::npos);
  EXPECT_NE(
      text.find(R"(caas_http_requests_total{method="GET",route="/v1/tenants/{id}",code="4xx"} 1)"),
      std::string::npos);
  EXPECT_NE(text.find(R"(le="0.0005"} 1)"), std::string::npos);
  EXPECT_NE(text.find(R"(le="+Inf"} 2)"), std::string::npos);
  EXPECT_NE(text.find("caas_http_request_duration_seconds_count"), std::string::npos);
}

class IdempotencyTest : public ::testing::Test {
 protected:
  ManualClock clock_{FromUnixSeconds(1767225600)};
  IdGenerator ids_{clock_};
  storage::MemoryStore store_{{IdempotencyCollectionSpec()}};
  Idempotency idem_{store_, clock_, ids_};

  Request Post(std::string body) {
    Request r;
    r.method = "POST";
    r.path = "/v1/tenants";
    r.body = std::move(body);
    return r;
  }
};

TEST_F(IdempotencyTest, ReplaysSameRequestRefusesDifferentOne) {
  auto first = idem_.Begin("key_a", "k1", Post("{}"));
  ASSERT_TRUE(first.claim.has_value());
  // While the first is running, a retry is told to wait.
  auto during = idem_.Begin("key_a", "k1", Post("{}"));
  ASSERT_TRUE(during.answer.has_value());
  EXPECT_EQ(during.answer->status, 409);
  Response res;
  res.status = 201;
  res.body = R"({"id":"tnt_1","secret":"caas_sk_abc"})";
  idem_.Finish(*first.claim, res);
  auto replay = idem_.Begin("key_a", "k1", Post("{}"));
  ASSERT_TRUE(replay.answer.has_value());
  EXPECT_EQ(replay.answer->status, 201);
  EXPECT_NE(replay.answer->body.find("tnt_1"), std::string::npos);
  EXPECT_EQ(replay.answer->body.find("caas_sk_abc"), std::string::npos);  // never stored
  auto other = idem_.Begin("key_a", "k1", Post(R"({"x":1})"));
  EXPECT_EQ(other.answer->status, 422);
  // Another API key's namespace is separate.
  EXPECT_TRUE(idem_.Begin("key_b", "k1", Post(R"({"x":1})")).claim.has_value());
}

TEST_F(IdempotencyTest, ServerErrorsReleaseTheKey) {
  auto first = idem_.Begin("key_a", "k2", Post("{}"));
  Response res;
  res.status = 503;
  idem_.Finish(*first.claim, res);
  auto retry = idem_.Begin("key_a", "k2", Post("{}"));
  EXPECT_TRUE(retry.claim.has_value());
}

TEST_F(IdempotencyTest, BadKeysAreRejected) {
  EXPECT_EQ(idem_.Begin("key_a", std::string(256, 'k'), Post("{}")).answer->status, 400);
  EXPECT_EQ(idem_.Begin("key_a", "a\x01", Post("{}")).answer->status, 400);
}

// A record is kept 24 h (on the service clock), then the scheduler removes
// it: the same key then runs as a new request.
TEST_F(IdempotencyTest, RecordsExpireAfterTheirRetention) {
  EXPECT_FALSE(idem_.NextExpiry().has_value());
  auto first = idem_.Begin("key_a", "k3", Post("{}"));
  Response res;
  res.status = 201;
  res.body = R"({"id":"tnt_1"})";
  idem_.Finish(*first.claim, res);
  clock_.Advance(std::chrono::hours(1));
  auto second = idem_.Begin("key_a", "k4", Post("{}"));
  idem_.Finish(*second.claim, res);
  const Instant start = FromUnixSeconds(1767225600);
  EXPECT_EQ(idem_.NextExpiry(), start + Idempotency::kRetention);
  EXPECT_EQ(idem_.DeleteExpired(start + Idempotency::kRetention - Micros(1), 100), 0);
  EXPECT_EQ(idem_.DeleteExpired(start + Idempotency::kRetention, 100), 1);
  EXPECT_EQ(idem_.NextExpiry(), start + std::chrono::hours(1) + Idempotency::kRetention);
  EXPECT_EQ(idem_.Begin("key_a", "k4", Post("{}")).answer->status, 201);  // still replayed
  EXPECT_TRUE(idem_.Begin("key_a", "k3", Post("{}")).claim.has_value());  // a new request
}

}  // namespace
}  // namespace caas::http
