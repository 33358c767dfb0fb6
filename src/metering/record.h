// The records of the usage-event log (the payload inside EventLog's frame),
// in the way leveldb keeps its format in log_format.h. Little-endian.
//
//   event (kind 1): u8 kind, u8 type, i64 time_us, i64 quantity,
//                   u16 lengths of tenant, source, id, subject, then the bytes
//   void  (kind 2): an event record, then i64 voided_at_us, u16 lengths of
//                   actor and reason, then those bytes
//   terms (kind 3): u8 kind, u16 tenant length, tenant, i64 version,
//                   u16 keep, u16 count, then `count` segments (see
//                   record.cc): "the tenant's terms timeline keeps its first
//                   `keep` segments, followed by these".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "catalog/timeline.h"
#include "metering/usage_event.h"

namespace caas::metering {

enum class RecordKind : uint8_t { kEvent = 1, kVoid = 2, kTerms = 3 };

struct DecodedRecord {
  RecordKind kind = RecordKind::kEvent;
  UsageEvent event;  // event, void
  Instant voided_at{};
  std::string actor, reason;  // void
  std::string tenant;         // terms
  int64_t version = 0;        // terms: the version of the timeline's source
  catalog::Timeline::Change change;
};

void EncodeEvent(std::string* out, const UsageEvent& ev);
void EncodeVoid(std::string* out, const UsageEvent& ev, Instant voided_at, std::string_view actor,
                std::string_view reason);
void EncodeTerms(std::string* out, std::string_view tenant, int64_t version,
                 const catalog::Timeline::Change& change);
// nullopt when the payload is not a whole, valid record.
std::optional<DecodedRecord> DecodeRecord(std::string_view payload);

}  // namespace caas::metering
