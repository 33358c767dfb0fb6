// Structured logs: one JSON object per line on stderr.
//
// Never pass secrets (API keys, card data, client secrets, request bodies or
// Authorization headers) as fields: the logger cannot tell them apart.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace caas {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

struct LogField {
  std::string_view key;
  std::variant<std::string_view, int64_t, double, bool> value;
};

void SetMinLogLevel(LogLevel level);
void Log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {});

// `s` as a JSON string literal, quotes included.
std::string JsonQuote(std::string_view s);

}  // namespace caas
