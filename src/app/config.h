// Configuration: embedded defaults < config file (--config, JSON) <
// CAAS_BILLING_* environment variables < command-line flags.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "app/app.h"
#include "core/status.h"

namespace caas::app {

// Values given on the command line; unset ones fall through to lower layers.
struct Overrides {
  std::optional<std::string> listen;
  std::optional<std::string> data_dir;
  std::optional<int> threads;
  std::optional<std::string> log_level;
  std::optional<std::string> clock;
  std::optional<std::string> now;
  std::optional<std::string> catalog;
  std::optional<std::string> store;
};

// `env` is the process environment (injectable for tests).
Result<Config> LoadConfig(const std::string& config_file, const Overrides& flags,
                          const std::map<std::string, std::string>& env);

std::map<std::string, std::string> ProcessEnvironment();

// Splits "HOST:PORT"; the port must be 0..65535.
Result<std::pair<std::string, uint16_t>> ParseListen(std::string_view listen);

}  // namespace caas::app
