// `caas-billing jobs list|show|retry`: the durable job queue of a running
// server (GET /v1/jobs…, admin key).
#pragma once

#include <string>

#include "app/client.h"

namespace caas::app {

int RunJobsList(const ClientTarget& c, const std::string& state, const std::string& type, int limit,
                bool json);
int RunJobsShow(const ClientTarget& c, const std::string& id);
int RunJobsRetry(const ClientTarget& c, const std::string& id);

}  // namespace caas::app
