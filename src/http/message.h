// Transport-neutral request and response, so handlers never see Beast.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace caas::http {

struct Request {
  std::string method;                                        // "GET"
  std::string target;                                        // "/v1/tenants?limit=2", as received
  std::string path;                                          // "/v1/tenants", percent-decoded
  std::vector<std::pair<std::string, std::string>> query;    // decoded, in order
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;

  // The first header with this (lower-case) name, or empty.
  std::string_view Header(std::string_view name) const;
  // Whether the header is present at all (an empty value counts).
  bool HasHeader(std::string_view name) const;
  // The first query parameter with this name, if present.
  const std::string* Query(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Splits "path?query" and percent-decodes both. False when the encoding is bad.
bool ParseTarget(std::string_view target, std::string* path,
                 std::vector<std::pair<std::string, std::string>>* query);

}  // namespace caas::http
