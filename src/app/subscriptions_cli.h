// `caas-billing subscriptions show|change|cancel` and `plans migrate`: they
// talk to a running server (which holds the scheduler and the caches).
#pragma once

#include <optional>
#include <string>

#include "app/client.h"

namespace caas::app {

int RunSubscriptionShow(const ClientTarget& c, const std::string& tenant, bool json);
int RunSubscriptionChange(const ClientTarget& c, const std::string& tenant, const std::string& plan,
                          const std::string& at, bool trial, bool preview);
int RunSubscriptionCancel(const ClientTarget& c, const std::string& tenant, bool now);
int RunPlansMigrate(const ClientTarget& c, const std::string& plan, int to_version,
                    std::optional<int> from_version);

}  // namespace caas::app
