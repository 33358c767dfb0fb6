#include "app/doctor_cli.h"

#include <filesystem>
#include <iostream>

#include "app/data_dir.h"
#include "metering/event_log.h"
#include "metering/log_doctor.h"
#include "storage/sqlite/sqlite_store.h"

namespace caas::app {
namespace fs = std::filesystem;

int RunDoctor(const std::string& data_dir, const std::string& store_url, bool salvage) {
  if (!fs::exists(data_dir)) {
    std::cerr << "caas-billing: no data directory at " << data_dir << "\n";
    return 2;
  }
  int damaged = 0;
  std::cout << "data directory " << data_dir << "\n";
  std::optional<DataDirectory> dir;
  try {
    dir.emplace(data_dir, store_url);
    std::cout << "  manifest    ok (" << dir->id() << ")\n";
  } catch (const std::exception& e) {
    std::cout << "  manifest    DAMAGED: " << e.what() << "\n";
    ++damaged;
  }
  const std::string store =
      store_url.rfind("sqlite:", 0) == 0
          ? (store_url[7] == '/' ? store_url.substr(7) : data_dir + "/" + store_url.substr(7))
          : std::string();
  if (!store.empty() && fs::exists(store)) {
    try {
      storage::SqliteStore s(store, {});
      auto problems = s.IntegrityCheck();
      if (problems.empty()) {
        std::cout << "  store       ok (" << store << ", schema " << s.SchemaVersion() << ")\n";
      } else {
        ++damaged;
        std::cout << "  store       DAMAGED (" << store << "):\n";
        for (const auto& p : problems) std::cout << "    " << p << "\n";
      }
    } catch (const std::exception& e) {
      ++damaged;
      std::cout << "  store       DAMAGED (" << store << "): " << e.what() << "\n";
    }
  } else {
    std::cout << "  store       none\n";
  }
  const std::string events = data_dir + "/" + DataDirectory::kEventLog;
  bool log_damaged = false;
  if (fs::exists(events)) {
    auto report = metering::EventLog::Verify(events);
    std::cout << "  event log   " << report.segments.size() << " segments, " << report.records
              << " records, " << report.bytes << " bytes\n";
    for (const auto& d : report.damage) {
      if (d.torn_tail) {
        std::cout << "    " << d.segment << " at byte " << d.offset << ": " << d.what
                  << " (a torn tail from a crash: never acknowledged; cut off at the next "
                     "start)\n";
        continue;
      }
      log_damaged = true;
      ++damaged;
      std::cout << "    DAMAGED " << d.segment << " at byte " << d.offset << ": " << d.what;
      if (d.intact_after > 0) std::cout << "; " << d.intact_after << " intact bytes after it";
      std::cout << "\n";
    }
  } else {
    std::cout << "  event log   none\n";
  }
  if (!salvage) {
    if (log_damaged) {
      std::cout << "\nThe service does not start on a damaged event log. 'caas-billing doctor "
                   "--salvage' keeps every intact record in a new log and moves the damaged "
                   "segments aside (nothing is deleted).\n";
    }
    return damaged ? 1 : 0;
  }
  if (!log_damaged) {
    std::cout << "\nnothing to salvage in the event log\n";
    return damaged ? 1 : 0;
  }
  try {
    if (!dir) dir.emplace(data_dir, store_url);
    dir->Lock();
  } catch (const std::exception& e) {
    std::cerr << "caas-billing: " << e.what() << "\n";
    return 2;
  }
  auto r = metering::SalvageEventLog(events);
  if (!r) {
    std::cerr << "caas-billing: salvage failed: " << r.error().message << "\n";
    return 2;
  }
  std::cout << "\nsalvaged: " << r->kept << " intact records kept in " << events << "\n"
            << "  dropped: " << r->undecodable << " undecodable, " << r->duplicate_events
            << " second copies of an event, " << r->orphan_voids << " voids of a lost event, "
            << r->orphan_terms << " terms changes whose base was lost (recorded again at the "
            << "next start)\n"
            << "  the damaged segments are in " << r->damaged_dir << "\n";
  return 0;
}

}  // namespace caas::app
