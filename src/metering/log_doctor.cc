#include "metering/log_doctor.h"

#include <chrono>
#include <filesystem>
#include <set>
#include <unordered_map>

#include "catalog/timeline.h"
#include "metering/event_log.h"
#include "metering/record.h"

namespace caas::metering {
namespace fs = std::filesystem;

Result<SalvageReport> SalvageEventLog(const std::string& dir) {
  if (!fs::exists(dir)) return Error::NotFound("no event log at " + dir);
  const auto stamp = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const std::string fresh = dir + ".salvaged-" + std::to_string(stamp);
  const std::string aside = dir + ".damaged-" + std::to_string(stamp);
  fs::remove_all(fresh);
  SalvageReport report;
  report.damaged_dir = aside;
  {
    EventLog out(fresh);
    out.Open([](uint64_t, std::string_view) {});
    std::string group;
    Status failed = Status::Ok();
    auto flush = [&] {
      if (group.empty() || !failed.ok()) return;
      failed = out.WriteAndSync(group);
      group.clear();
    };
    std::set<std::string> events;  // tenant \x1f source \x1f id
    std::set<std::string> voided;
    std::unordered_map<std::string, size_t> segments;  // tenant -> timeline length
    size_t in_group = 0;
    EventLog::ScanIntact(dir, [&](std::string_view payload) {
      auto d = DecodeRecord(payload);
      if (!d) {
        ++report.undecodable;
        return;
      }
      if (d->kind == RecordKind::kTerms) {
        size_t& n = segments[d->tenant];
        if (d->change.keep > n) {
          ++report.orphan_terms;
          return;
        }
        n = d->change.keep + d->change.tail.size();
      } else {
        const std::string key = d->event.tenant + '\x1f' + d->event.source + '\x1f' + d->event.id;
        if (d->kind == RecordKind::kEvent) {
          if (!events.insert(key).second) {
            ++report.duplicate_events;
            return;
          }
        } else if (!events.count(key) || !voided.insert(key).second) {
          ++report.orphan_voids;
          return;
        }
      }
      if (group.empty()) EventLog::StartGroup(&group);
      EventLog::Frame(&group, payload);
      ++report.kept;
      if (++in_group == 1000) {
        flush();
        in_group = 0;
      }
    });
    flush();
    if (!failed) return failed.error();
    out.Close();
  }
  fs::rename(dir, aside);
  fs::rename(fresh, dir);
  return report;
}

}  // namespace caas::metering
