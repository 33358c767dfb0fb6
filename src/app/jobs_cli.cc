#include "app/jobs_cli.h"

#include <boost/json.hpp>
#include <iostream>

namespace caas::app {
namespace json = boost::json;
namespace {

// Query values are sent percent-encoded (a type may hold any character).
std::string Encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

int RunJobsList(const ClientTarget& c, const std::string& state, const std::string& type, int limit,
                bool as_json) {
  std::string after;
  int printed = 0;
  // Pages through the list until `limit` jobs are printed (or none are left).
  while (printed < limit) {
    std::string path = "/v1/jobs?limit=" + std::to_string(std::min(100, limit - printed));
    if (!state.empty()) path += "&state=" + Encode(state);
    if (!type.empty()) path += "&type=" + Encode(type);
    if (!after.empty()) path += "&starting_after=" + after;
    int code = 0;
    auto r = CallJson(c, "GET", path, "", &code);
    if (!r) return code;
    for (const auto& j : r->at("data").as_array()) {
      const auto& o = j.as_object();
      if (as_json) {
        std::cout << json::serialize(o) << "\n";
      } else {
        std::cout << JsonText(o.at("id")) << "  " << JsonText(o.at("type")) << "  "
                  << JsonText(o.at("state")) << "  run_at " << JsonText(o.at("run_at"))
                  << "  attempts " << JsonText(o.at("attempts")) << "/"
                  << JsonText(o.at("max_attempts"));
        if (!JsonText(o.at("last_error")).empty())
          std::cout << "  last_error " << JsonText(o.at("last_error"));
        std::cout << "\n";
      }
      ++printed;
    }
    if (!r->at("has_more").as_bool() || r->at("data").as_array().empty()) break;
    after = JsonText(r->at("next_starting_after"));
  }
  if (printed == 0 && !as_json) std::cout << "no jobs\n";
  return 0;
}

int RunJobsShow(const ClientTarget& c, const std::string& id) {
  int code = 0;
  auto r = CallJson(c, "GET", "/v1/jobs/" + Encode(id), "", &code);
  if (!r) return code;
  std::cout << json::serialize(*r) << "\n";
  return 0;
}

int RunJobsRetry(const ClientTarget& c, const std::string& id) {
  int code = 0;
  auto r = CallJson(c, "POST", "/v1/jobs/" + Encode(id) + "/retry", "", &code);
  if (!r) return code;
  std::cout << "job " << JsonText(r->at("id")) << " queued again (run_at "
            << JsonText(r->at("run_at")) << ")\n";
  return 0;
}

}  // namespace caas::app
