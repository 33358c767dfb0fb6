#include "metering/usage_event.h"

#include <gtest/gtest.h>

namespace caas::metering {
namespace {

const ParseOptions kAdmin{};

ParsedEvent One(const std::string& json, const ParseOptions& options = kAdmin) {
  auto r = ParseEventBody(json, BodyFormat::kSingle, options);
  EXPECT_TRUE(r.ok()) << json;
  if (!r.ok()) return {};
  EXPECT_EQ(r->size(), 1u);
  return r->front();
}

std::string Event(const std::string& extra, const std::string& type = "message.sent") {
  return R"({"specversion":"1.0","id":"e1","source":"/chat","type":")" + type +
         R"(","time":"2026-11-20T10:00:00Z","tenant":"tnt_a")" + extra + "}";
}

TEST(UsageEventParse, ValidMessageDefaultsQuantityToOne) {
  auto p = One(Event(""));
  ASSERT_TRUE(p.event) << p.field << ": " << p.reason;
  EXPECT_EQ(p.event->tenant, "tnt_a");
  EXPECT_EQ(p.event->source, "/chat");
  EXPECT_EQ(p.event->id, "e1");
  EXPECT_EQ(p.event->type, UsageType::kMessageSent);
  EXPECT_EQ(p.event->quantity, 1);
  EXPECT_EQ(FormatRfc3339(p.event->time), "2026-11-20T10:00:00Z");
}

TEST(UsageEventParse, QuantityBytesAndSubject) {
  auto p = One(Event(R"(,"data":{"quantity":7})", "api.call"));
  ASSERT_TRUE(p.event);
  EXPECT_EQ(p.event->quantity, 7);
  p = One(Event(R"(,"data":{"bytes":-500})", "media.stored"));
  ASSERT_TRUE(p.event);
  EXPECT_EQ(p.event->quantity, -500);
  p = One(Event(R"(,"subject":"user-9")", "user.active"));
  ASSERT_TRUE(p.event);
  EXPECT_EQ(p.event->subject, "user-9");
  EXPECT_EQ(p.event->quantity, 1);
  // A subject on another type is ignored (not part of what is counted).
  p = One(Event(R"(,"subject":"user-9")"));
  ASSERT_TRUE(p.event);
  EXPECT_EQ(p.event->subject, "");
  // Extension attributes are allowed and ignored; datacontenttype JSON too.
  p = One(Event(R"(,"traceparent":"00-abc","datacontenttype":"application/json")"));
  ASSERT_TRUE(p.event) << p.reason;
}

struct RejectCase {
  std::string json;
  std::string field;
  std::string reason_part;
};

TEST(UsageEventParse, RejectionsNameTheFieldAndReason) {
  const std::vector<RejectCase> cases = {
      {R"({"id":"e1","source":"/s","type":"message.sent","time":"2026-11-20T10:00:00Z","tenant":"t"})",
       "specversion", "required"},
      {Event(R"(,"specversion":"0.3")"), "specversion", "appears more than once"},
      {R"({"specversion":"0.3","id":"e1","source":"/s","type":"message.sent","time":"2026-11-20T10:00:00Z","tenant":"t"})",
       "specversion", "1.0"},
      {R"({"specversion":"1.0","source":"/s","type":"message.sent","time":"2026-11-20T10:00:00Z","tenant":"t"})",
       "id", "required"},
      {R"({"specversion":"1.0","id":"","source":"/s","type":"message.sent","time":"2026-11-20T10:00:00Z","tenant":"t"})",
       "id", "empty"},
      {R"({"specversion":"1.0","id":7,"source":"/s","type":"message.sent","time":"2026-11-20T10:00:00Z","tenant":"t"})",
       "id", "string"},
      {R"({"specversion":"1.0","id":"e","type":"message.sent","time":"2026-11-20T10:00:00Z","tenant":"t"})",
       "source", "required"},
      {Event("", "message.deleted"), "type", "unknown usage type"},
      {R"({"specversion":"1.0","id":"e","source":"/s","type":"message.sent","tenant":"t"})", "time",
       "required"},
      {R"({"specversion":"1.0","id":"e","source":"/s","type":"message.sent","time":"yesterday","tenant":"t"})",
       "time", "RFC 3339"},
      {R"({"specversion":"1.0","id":"e","source":"/s","type":"message.sent","time":"2026-11-20T10:00:00Z"})",
       "tenant", "required"},
      {Event("", "user.active"), "subject", "required"},
      {Event("", "media.stored"), "data.bytes", "required"},
      {Event(R"(,"data":{"bytes":0})", "media.stored"), "data.bytes", "non-zero"},
      {Event(R"(,"data":{"quantity":0})"), "data.quantity", "between 1"},
      {Event(R"(,"data":{"quantity":1.5})"), "data.quantity", "integer"},
      {Event(R"(,"data":{"quantity":"3"})"), "data.quantity", "integer"},
      {Event(R"(,"data":{"quantity":9999999999})"), "data.quantity", "between 1"},
      {Event(R"(,"data":{"qty":3})"), "data.qty", "not a field"},
      {Event(R"(,"data":[1])"), "data", "object"},
      {Event(R"(,"data_base64":"AAAA")"), "data_base64", "binary"},
      {Event(R"(,"Bad-Name":1)"), "Bad-Name", "not a CloudEvents attribute"},
      {Event(R"(,"ext":{"a":1})"), "ext", "scalar"},
      {Event(R"(,"subject":"a\u0001b")", "user.active"), "subject", "control"},
      {Event(R"(,"datacontenttype":"text/plain")"), "datacontenttype", "application/json"},
      {Event(",\"subject\":\"" + std::string(300, 'u') + "\"", "user.active"), "subject",
       "at most 256"},
  };
  for (const auto& c : cases) {
    auto p = One(c.json);
    EXPECT_FALSE(p.event) << c.json;
    EXPECT_EQ(p.field, c.field) << c.json << " -> " << p.reason;
    EXPECT_NE(p.reason.find(c.reason_part), std::string::npos) << c.json << " -> " << p.reason;
  }
}

TEST(UsageEventParse, TenantKeysSendOnlyTheirOwn) {
  ParseOptions own{"tnt_a"};
  auto p = One(
      R"({"specversion":"1.0","id":"e","source":"/s","type":"api.call","time":"2026-11-20T10:00:00Z"})",
      own);
  ASSERT_TRUE(p.event);
  EXPECT_EQ(p.event->tenant, "tnt_a");
  p = One(Event(""), ParseOptions{"tnt_b"});
  EXPECT_FALSE(p.event);
  EXPECT_EQ(p.field, "tenant");
}

TEST(UsageEventParse, BatchKeepsOrderAndIsolatesBadElements) {
  std::string body = "[" + Event("") + ",42," + Event("", "nope") + "]";
  auto r = ParseEventBody(body, BodyFormat::kBatch, kAdmin);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_TRUE((*r)[0].event);
  EXPECT_FALSE((*r)[1].event);
  EXPECT_NE((*r)[1].reason.find("JSON object"), std::string::npos);
  EXPECT_EQ((*r)[2].field, "type");
}

TEST(UsageEventParse, WholeBodyErrors) {
  EXPECT_FALSE(ParseEventBody("[" + Event("") + ",", BodyFormat::kBatch, kAdmin).ok());
  EXPECT_FALSE(ParseEventBody(Event(""), BodyFormat::kBatch, kAdmin).ok());
  EXPECT_FALSE(ParseEventBody("[]", BodyFormat::kBatch, kAdmin).ok());
  EXPECT_FALSE(ParseEventBody("[" + Event("") + "]", BodyFormat::kSingle, kAdmin).ok());
  std::string big = "[";
  for (int i = 0; i < 10'001; ++i) big += (i ? ",{}" : "{}");
  big += "]";
  auto r = ParseEventBody(big, BodyFormat::kBatch, kAdmin);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("10000"), std::string::npos);
}

// A number beyond int64 or double rejects only the event that holds it,
// naming the field; the rest of the batch stands.
TEST(UsageEventParse, NumbersOutOfRangeRejectOnlyTheirEvent) {
  const std::string huge = Event(R"(,"data":{"quantity":18446744073709551616})");
  const std::string inf = Event(R"(,"data":{"quantity":1e400})", "api.call");
  auto single = ParseEventBody(huge, BodyFormat::kSingle, kAdmin);
  ASSERT_TRUE(single.ok());
  ASSERT_EQ(single->size(), 1u);
  EXPECT_FALSE((*single)[0].event);
  EXPECT_EQ((*single)[0].field, "data.quantity");
  auto batch = ParseEventBody(
      "[" + Event("") + ", " + huge + ",\n" + inf + "," + Event("", "api.call") + "]",
      BodyFormat::kBatch, kAdmin);
  ASSERT_TRUE(batch.ok());
  ASSERT_EQ(batch->size(), 4u);
  EXPECT_TRUE((*batch)[0].event);
  EXPECT_EQ((*batch)[1].field, "data.quantity");
  EXPECT_EQ((*batch)[2].field, "data.quantity");
  EXPECT_TRUE((*batch)[3].event);
  auto nd = ParseEventBody(Event("") + "\n" + huge + "\n", BodyFormat::kNdjson, kAdmin);
  ASSERT_TRUE(nd.ok());
  EXPECT_TRUE((*nd)[0].event);
  EXPECT_EQ((*nd)[1].field, "data.quantity");
  // Still malformed as a whole when it is not JSON apart from the number.
  EXPECT_FALSE(ParseEventBody("[" + huge + ",", BodyFormat::kBatch, kAdmin).ok());
}

TEST(UsageEventParse, BinaryContentModeAndNanosecondTimes) {
  std::vector<std::pair<std::string, std::string>> headers = {
      {"content-type", "application/json"},
      {"ce-specversion", "1.0"},
      {"ce-id", "b%2F1"},  // percent-encoded: "b/1"
      {"ce-source", "/sdk"},
      {"ce-type", "message.sent"},
      {"ce-time", "2026-11-25T11:59:00.123456789Z"},  // Go's RFC3339Nano
      {"ce-tenant", "tnt_a"},
      {"ce-traceparent", "00-abc-def-01"}};
  auto p = ParseBinaryEvent(headers, R"({"quantity":4})", kAdmin);
  ASSERT_TRUE(p.event) << p.field << " " << p.reason;
  EXPECT_EQ(p.event->id, "b/1");
  EXPECT_EQ(p.event->quantity, 4);
  EXPECT_EQ(FormatRfc3339(p.event->time), "2026-11-25T11:59:00.123456Z");
  headers.push_back({"ce-id", "again"});
  EXPECT_EQ(ParseBinaryEvent(headers, "{}", kAdmin).reason, "appears more than once");
  headers.pop_back();
  headers[0].second = "text/plain";
  EXPECT_EQ(ParseBinaryEvent(headers, "4", kAdmin).field, "datacontenttype");
  headers[0].second = "application/json";
  EXPECT_EQ(ParseBinaryEvent(headers, "{not json", kAdmin).field, "data");
  // A field name cut to 64 bytes keeps whole characters (valid UTF-8).
  std::string key(63, 'a');
  key += "\u00e9\u00e9";  // é (2 bytes): the cut falls inside it
  auto r = ParseEventBody(Event(",\"data\":{\"" + key + "\":1}"), BodyFormat::kSingle, kAdmin);
  ASSERT_TRUE(r.ok());
  const std::string field = (*r)[0].field;
  EXPECT_EQ(field, "data." + std::string(63, 'a'));
}

TEST(UsageEventParse, NdjsonLinesStandAlone) {
  std::string body = Event("") + "\n\n{not json\r\n" + Event("", "api.call") + "\n";
  auto r = ParseEventBody(body, BodyFormat::kNdjson, kAdmin);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 3u);
  EXPECT_TRUE((*r)[0].event);
  EXPECT_FALSE((*r)[1].event);
  EXPECT_NE((*r)[1].reason.find("malformed JSON"), std::string::npos);
  EXPECT_TRUE((*r)[2].event);
}

TEST(UsageEventParse, ContentTypes) {
  EXPECT_EQ(FormatFromContentType("application/cloudevents+json; charset=utf-8"),
            BodyFormat::kSingle);
  EXPECT_EQ(FormatFromContentType("Application/CloudEvents-Batch+JSON"), BodyFormat::kBatch);
  EXPECT_EQ(FormatFromContentType("application/x-ndjson"), BodyFormat::kNdjson);
  EXPECT_EQ(FormatFromContentType("application/json"), std::nullopt);
}

}  // namespace
}  // namespace caas::metering
