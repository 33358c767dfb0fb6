// Strict reading of JSON request bodies: every wrong type, missing field and
// unknown field becomes an Error naming the field, so the answer can list
// them all at once.
#pragma once

#include <boost/json/object.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"

namespace caas::http {

// Parses a body that must be one JSON object (max depth 32). On failure the
// Error says where ("at line 1, column 9") and why.
Result<boost::json::object> ParseJsonObject(std::string_view body);

class ObjectReader {
 public:
  // `prefix` is prepended to field names in errors ("address.").
  ObjectReader(const boost::json::object& object, std::vector<Error>& errors,
               std::string prefix = "");

  // A string member. Absent: nullopt (and an error if required). JSON null is
  // treated as absent only when `null_ok`.
  std::optional<std::string> String(std::string_view key, bool required, bool null_ok = false);
  // An object member; `present_null` is set when the member is JSON null.
  const boost::json::object* Object(std::string_view key, bool required,
                                    bool* present_null = nullptr);
  // Adds an "unknown field" error for every member not read.
  void RejectUnknown();

 private:
  const boost::json::value* Member(std::string_view key, bool required);
  void TypeError(std::string_view key, std::string_view want, const boost::json::value& got);

  const boost::json::object& object_;
  std::vector<Error>& errors_;
  std::string prefix_;
  std::set<std::string, std::less<>> seen_;
};

}  // namespace caas::http
