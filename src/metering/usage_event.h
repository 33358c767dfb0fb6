// Usage events: the CloudEvents 1.0 wire format (JSON structured mode, batch,
// NDJSON, and HTTP binary mode), its validation, and the in-memory form the
// metering engine counts.
//
// Types (see docs/metering.md):
//   message.sent  count, data.quantity (default 1)          -> metric "messages"
//   api.call      count, data.quantity (default 1)          -> metric "api_calls"
//   user.active   subject = end user's id, once per period  -> metric "mau"
//   media.stored  data.bytes added (negative when removed)  -> metric "storage" (GB-month)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/time.h"

namespace caas::metering {

enum class UsageType : uint8_t {
  kMessageSent = 1,
  kApiCall = 2,
  kUserActive = 3,
  kMediaStored = 4,
};

std::string_view UsageTypeName(UsageType type);
std::optional<UsageType> ParseUsageType(std::string_view name);

// Bounds on every attribute (bytes of UTF-8 text).
inline constexpr size_t kMaxIdBytes = 256;
inline constexpr size_t kMaxSourceBytes = 512;
inline constexpr size_t kMaxSubjectBytes = 256;
inline constexpr size_t kMaxTenantBytes = 64;
inline constexpr int64_t kMaxCountQuantity = 1'000'000'000;         // per event
inline constexpr int64_t kMaxStorageBytes = 1'000'000'000'000'000;  // 1 PB per event
inline constexpr size_t kMaxEventsPerRequest = 10'000;
inline constexpr size_t kMaxRequestBytes = 10 << 20;  // 10 MiB

struct UsageEvent {
  std::string tenant;
  std::string source;
  std::string id;
  std::string subject;  // user.active only
  UsageType type = UsageType::kMessageSent;
  Instant time{};
  int64_t quantity = 1;  // a count, or a byte delta for media.stored

  bool operator==(const UsageEvent&) const = default;
};

// One element of a request after parsing: an event, or why it was rejected.
struct ParsedEvent {
  std::optional<UsageEvent> event;
  std::string field;   // the offending attribute ("time", "data.quantity") when rejected
  std::string reason;  // when rejected
};

enum class BodyFormat { kSingle, kBatch, kNdjson };

// The format named by a Content-Type (parameters ignored), if it is one of
// application/cloudevents+json, application/cloudevents-batch+json,
// application/x-ndjson (or application/jsonl).
std::optional<BodyFormat> FormatFromContentType(std::string_view content_type);

struct ParseOptions {
  // The tenant of a tenant-scoped key: events may omit `tenant` and may not
  // name another. Empty for admin keys, which must name the tenant.
  std::string principal_tenant;
};

// CloudEvents HTTP binary content mode: one event whose attributes are the
// ce-* headers (names lower-case, values percent-encoded) and whose data is
// the body (application/json). Rejected like any structured event.
ParsedEvent ParseBinaryEvent(const std::vector<std::pair<std::string, std::string>>& headers,
                             std::string_view body, const ParseOptions& options);

// Parses a request body into its elements, in order. Returns an error (and no
// events) only when the body as a whole is unusable: malformed JSON in the
// single or batch form, the wrong top-level shape, or too many events. In
// NDJSON each line stands alone: a malformed line is one rejected element.
// Timestamps are checked later, against the clock, by the engine.
Result<std::vector<ParsedEvent>> ParseEventBody(std::string_view body, BodyFormat format,
                                                const ParseOptions& options);

}  // namespace caas::metering
