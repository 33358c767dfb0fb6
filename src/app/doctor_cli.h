// `caas-billing doctor [--salvage]`: checks a data directory (its manifest,
// the store's integrity, every event-log segment) and reports what is
// damaged, without changing anything. With --salvage (the server stopped),
// it keeps every intact record of a damaged event log in a new log and
// moves the damaged segments aside.
#pragma once

#include <string>

namespace caas::app {

// Exit codes: 0 nothing damaged (or salvaged), 1 damage found, 2 the check
// itself could not run.
int RunDoctor(const std::string& data_dir, const std::string& store, bool salvage);

}  // namespace caas::app
