#include "storage/json_fields.h"

namespace caas::storage::fields {
namespace json = boost::json;

const json::value& At(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  if (!v) throw Corrupt(std::string(k) + ": missing");
  return *v;
}
const json::object& Obj(const json::object& o, std::string_view k) {
  const json::value& v = At(o, k);
  if (!v.is_object()) throw Corrupt(std::string(k) + ": not an object");
  return v.as_object();
}
const json::array& Arr(const json::object& o, std::string_view k) {
  const json::value& v = At(o, k);
  if (!v.is_array()) throw Corrupt(std::string(k) + ": not an array");
  return v.as_array();
}
const json::object& AsObj(const json::value& v, std::string_view what) {
  if (!v.is_object()) throw Corrupt(std::string(what) + ": not an object");
  return v.as_object();
}
std::string Str(const json::object& o, std::string_view k) {
  const json::value& v = At(o, k);
  if (!v.is_string()) throw Corrupt(std::string(k) + ": not a string");
  return std::string(v.as_string());
}
int64_t Int(const json::object& o, std::string_view k) {
  const json::value& v = At(o, k);
  if (v.is_int64()) return v.as_int64();
  if (v.is_uint64() && v.as_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(v.as_uint64());
  }
  throw Corrupt(std::string(k) + ": not an integer");
}
bool Bool(const json::object& o, std::string_view k) {
  const json::value& v = At(o, k);
  if (!v.is_bool()) throw Corrupt(std::string(k) + ": not a boolean");
  return v.as_bool();
}
Instant Time(const json::object& o, std::string_view k) {
  auto t = ParseRfc3339(Str(o, k));
  if (!t) throw Corrupt(std::string(k) + ": not an RFC 3339 time");
  return *t;
}
std::optional<Instant> OptTime(const json::object& o, std::string_view k) {
  const json::value* v = o.if_contains(k);
  if (!v || v->is_null()) return std::nullopt;
  return Time(o, k);
}
json::value OptTimeJson(const std::optional<Instant>& t) {
  return t ? json::value(FormatRfc3339(*t)) : json::value(nullptr);
}
const Currency& CurrencyOf(const json::object& o, std::string_view k) {
  const Currency* c = Currency::Find(Str(o, k));
  if (!c) throw Corrupt(std::string(k) + ": not a currency");
  return *c;
}
Period PeriodOf(const json::object& o) { return Period{Time(o, "start"), Time(o, "end")}; }
json::object PeriodJson(const Period& p) {
  return {{"start", FormatRfc3339(p.start)}, {"end", FormatRfc3339(p.end)}};
}

}  // namespace caas::storage::fields
