// Salvage of a damaged event log (caas-billing doctor --salvage): every intact
// record is kept, in order, in a new log; the damaged segments are moved
// aside whole, never deleted. Records that would not replay are dropped and
// counted: an event whose key came before (a second copy), a void of an event
// that is not there, a timeline change whose base was lost (the service
// records the tenant's current timeline again at its next start).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace caas::metering {

struct SalvageReport {
  uint64_t kept = 0;
  uint64_t undecodable = 0;
  uint64_t duplicate_events = 0;
  uint64_t orphan_voids = 0;
  uint64_t orphan_terms = 0;
  std::string damaged_dir;  // where the old segments are now
};

// `dir` is the event log directory; nothing may have it open. On success the
// log in `dir` holds the intact records and the old segments are in
// `<dir>.damaged-<time>`.
Result<SalvageReport> SalvageEventLog(const std::string& dir);

}  // namespace caas::metering
