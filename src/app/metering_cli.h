// `caas-billing ingest` and `caas-billing usage`: talk to a running server
// (the server alone owns the event log).
#pragma once

#include <string>

namespace caas::app {

struct IngestOptions {
  std::string url;
  std::string key;
  std::string file;  // "-" for standard input
  size_t batch = 5000;
  bool progress = true;  // a progress line on stderr (redrawn when it is a terminal)
};
// Exit codes: 0 every event accepted or duplicate, 1 some rejected or in
// conflict, 2 the input or the server could not be used.
int RunIngest(const IngestOptions& options);

int RunUsage(const std::string& url, const std::string& key, const std::string& tenant, bool json);

}  // namespace caas::app
