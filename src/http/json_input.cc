#include "http/json_input.h"

#include <boost/json.hpp>

#include "core/text.h"

namespace caas::http {
namespace json = boost::json;

namespace {

std::string_view KindName(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "a value";
}

}  // namespace

Result<json::object> ParseJsonObject(std::string_view body) {
  if (body.empty()) return Error::Invalid("", "the request body is empty; send a JSON object");
  json::parse_options opt;
  opt.max_depth = 32;
  json::stream_parser p({}, opt);
  json::error_code ec;
  size_t n = p.write_some(body.data(), body.size(), ec);
  if (!ec && n == body.size()) p.finish(ec);
  if (ec || n != body.size()) {
    // Locate the byte where parsing stopped as line and column.
    size_t line = 1, col = 1;
    for (size_t i = 0; i < n && i < body.size(); ++i) {
      if (body[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string why = ec ? ec.message() : "unexpected data after the JSON value";
    return Error::Invalid("", "the body is not valid JSON (" + why + ") at line " +
                                  std::to_string(line) + ", column " + std::to_string(col));
  }
  json::value v = p.release();
  if (!v.is_object()) return Error::Invalid("", "the body must be a JSON object");
  return std::move(v.as_object());
}

ObjectReader::ObjectReader(const json::object& object, std::vector<Error>& errors,
                           std::string prefix)
    : object_(object), errors_(errors), prefix_(std::move(prefix)) {}

const json::value* ObjectReader::Member(std::string_view key, bool required) {
  seen_.insert(std::string(key));
  const json::value* v = object_.if_contains(key);
  if (v == nullptr && required)
    errors_.push_back(Error::Invalid(prefix_ + std::string(key), "is required"));
  return v;
}

void ObjectReader::TypeError(std::string_view key, std::string_view want, const json::value& got) {
  errors_.push_back(
      Error::Invalid(prefix_ + std::string(key),
                     "must be " + std::string(want) + ", got " + std::string(KindName(got))));
}

std::optional<std::string> ObjectReader::String(std::string_view key, bool required, bool null_ok) {
  const json::value* v = Member(key, required);
  if (v == nullptr) return std::nullopt;
  if (v->is_null() && null_ok) return std::nullopt;
  if (!v->is_string()) {
    TypeError(key, "a string", *v);
    return std::nullopt;
  }
  return std::string(v->as_string());
}

const json::object* ObjectReader::Object(std::string_view key, bool required, bool* present_null) {
  const json::value* v = Member(key, required);
  if (v == nullptr) return nullptr;
  if (v->is_null() && present_null != nullptr) {
    *present_null = true;
    return nullptr;
  }
  if (!v->is_object()) {
    TypeError(key, "an object", *v);
    return nullptr;
  }
  return &v->as_object();
}

void ObjectReader::RejectUnknown() {
  for (const auto& kv : object_) {
    if (seen_.count(std::string_view(kv.key())) == 0) {
      errors_.push_back(Error::Invalid(prefix_ + std::string(TruncateUtf8(kv.key(), 64)),
                                       "is not a known field"));
    }
  }
}

}  // namespace caas::http
