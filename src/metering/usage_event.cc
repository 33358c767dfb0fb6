#include "metering/usage_event.h"

#include <simdjson.h>

#include <algorithm>
#include <array>

#include "core/text.h"

namespace caas::metering {
namespace dom = simdjson::dom;

std::string_view UsageTypeName(UsageType type) {
  switch (type) {
    case UsageType::kMessageSent:
      return "message.sent";
    case UsageType::kApiCall:
      return "api.call";
    case UsageType::kUserActive:
      return "user.active";
    case UsageType::kMediaStored:
      return "media.stored";
  }
  return "unknown";
}

std::optional<UsageType> ParseUsageType(std::string_view name) {
  for (auto t : {UsageType::kMessageSent, UsageType::kApiCall, UsageType::kUserActive,
                 UsageType::kMediaStored}) {
    if (UsageTypeName(t) == name) return t;
  }
  return std::nullopt;
}

std::optional<BodyFormat> FormatFromContentType(std::string_view content_type) {
  auto semi = content_type.find(';');
  std::string_view media = content_type.substr(0, semi);
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  std::string lower(media);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "application/cloudevents+json") return BodyFormat::kSingle;
  if (lower == "application/cloudevents-batch+json") return BodyFormat::kBatch;
  if (lower == "application/x-ndjson" || lower == "application/jsonl") return BodyFormat::kNdjson;
  return std::nullopt;
}

namespace {

ParsedEvent Reject(std::string field, std::string reason) {
  ParsedEvent p;
  p.field = std::move(field);
  p.reason = std::move(reason);
  return p;
}

// CloudEvents extension attribute names: lower-case letters and digits.
bool IsExtensionName(std::string_view name) {
  if (name.empty() || name.size() > 20) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

std::string_view TypeName(dom::element_type t) {
  switch (t) {
    case dom::element_type::ARRAY:
      return "an array";
    case dom::element_type::OBJECT:
      return "an object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE:
      return "a number";
    case dom::element_type::STRING:
      return "a string";
    case dom::element_type::BOOL:
      return "a boolean";
    case dom::element_type::NULL_VALUE:
      return "null";
  }
  return "a value";
}

// Reads a bounded, non-empty text attribute without control characters.
// `exact`: the value is compared with fixed text or parsed strictly after
// (specversion, type, time), so the control character scan is skipped.
bool ReadText(dom::element value, std::string_view name, size_t max_bytes, std::string* out,
              ParsedEvent* reject, bool exact = false) {
  std::string_view s;
  if (value.get_string().get(s) != simdjson::SUCCESS) {
    *reject =
        Reject(std::string(name), "must be a string, not " + std::string(TypeName(value.type())));
    return false;
  }
  if (s.empty()) {
    *reject = Reject(std::string(name), "must not be empty");
    return false;
  }
  if (s.size() > max_bytes) {
    *reject = Reject(std::string(name), "must be at most " + std::to_string(max_bytes) + " bytes");
    return false;
  }
  if (!exact && HasControlCharacters(s)) {
    *reject = Reject(std::string(name), "must not contain control characters");
    return false;
  }
  out->assign(s);
  return true;
}

bool ReadInteger(dom::element value, std::string_view name, int64_t* out, ParsedEvent* reject) {
  if (value.get_int64().get(*out) == simdjson::SUCCESS) return true;
  double d;
  if (value.get_double().get(d) == simdjson::SUCCESS) {
    *reject = Reject(std::string(name), "must be an integer");
  } else if (value.type() == dom::element_type::UINT64) {
    *reject = Reject(std::string(name), "is out of range");
  } else {
    *reject =
        Reject(std::string(name), "must be an integer, not " + std::string(TypeName(value.type())));
  }
  return false;
}

ParsedEvent ParseOne(dom::element element, const ParseOptions& options) {
  dom::object obj;
  if (element.get_object().get(obj) != simdjson::SUCCESS) {
    return Reject("",
                  "an event must be a JSON object, not " + std::string(TypeName(element.type())));
  }
  UsageEvent ev;
  ParsedEvent reject;
  bool has_spec = false, has_id = false, has_source = false, has_type = false, has_time = false;
  bool has_tenant = false, has_subject = false;
  std::string type_name, time_text;
  std::optional<dom::object> data;
  std::array<std::string_view, 16> seen{};
  size_t seen_count = 0;
  for (auto field : obj) {
    std::string_view key = field.key;
    dom::element value = field.value;
    for (size_t i = 0; i < seen_count; ++i) {
      if (seen[i] == key) return Reject(std::string(key), "appears more than once");
    }
    if (seen_count < seen.size()) seen[seen_count++] = key;
    if (key == "specversion") {
      std::string v;
      if (!ReadText(value, key, 8, &v, &reject, true)) return reject;
      if (v != "1.0") return Reject("specversion", "must be \"1.0\"");
      has_spec = true;
    } else if (key == "id") {
      if (!ReadText(value, key, kMaxIdBytes, &ev.id, &reject)) return reject;
      has_id = true;
    } else if (key == "source") {
      if (!ReadText(value, key, kMaxSourceBytes, &ev.source, &reject)) return reject;
      if (ev.source.find(' ') != std::string::npos) {
        return Reject("source", "must be a URI-reference (no spaces)");
      }
      has_source = true;
    } else if (key == "type") {
      if (!ReadText(value, key, 64, &type_name, &reject, true)) return reject;
      has_type = true;
    } else if (key == "time") {
      if (!ReadText(value, key, 64, &time_text, &reject, true)) return reject;
      auto t = ParseRfc3339(time_text);
      if (!t) return Reject("time", "must be an RFC 3339 date-time: " + t.error().message);
      ev.time = *t;
      has_time = true;
    } else if (key == "tenant") {
      if (!ReadText(value, key, kMaxTenantBytes, &ev.tenant, &reject)) return reject;
      has_tenant = true;
    } else if (key == "subject") {
      if (!ReadText(value, key, kMaxSubjectBytes, &ev.subject, &reject)) return reject;
      has_subject = true;
    } else if (key == "datacontenttype") {
      std::string v;
      if (!ReadText(value, key, 128, &v, &reject)) return reject;
      if (v != "application/json" && v.rfind("application/json;", 0) != 0) {
        return Reject("datacontenttype", "must be application/json");
      }
    } else if (key == "dataschema") {
      std::string v;
      if (!ReadText(value, key, kMaxSourceBytes, &v, &reject)) return reject;
    } else if (key == "data") {
      dom::object d;
      if (value.get_object().get(d) != simdjson::SUCCESS) {
        return Reject("data", "must be an object, not " + std::string(TypeName(value.type())));
      }
      data = d;
    } else if (key == "data_base64") {
      return Reject("data_base64", "binary data is not accepted; use a JSON object in data");
    } else if (IsExtensionName(key)) {
      // Other extension attributes (traceparent, ...) are allowed and ignored,
      // as long as they are scalars.
      auto t = value.type();
      if (t == dom::element_type::ARRAY || t == dom::element_type::OBJECT) {
        return Reject(std::string(key), "an extension attribute must be a scalar");
      }
    } else {
      return Reject(std::string(key).substr(0, 64),
                    "is not a CloudEvents attribute (extension names are lower-case letters and "
                    "digits, at most 20)");
    }
  }
  if (!has_spec) return Reject("specversion", "is required");
  if (!has_id) return Reject("id", "is required");
  if (!has_source) return Reject("source", "is required");
  if (!has_type) return Reject("type", "is required");
  auto type = ParseUsageType(type_name);
  if (!type) {
    return Reject("type",
                  "unknown usage type; one of message.sent, api.call, user.active, media.stored");
  }
  ev.type = *type;
  if (!has_time) return Reject("time", "is required for usage events");
  if (options.principal_tenant.empty()) {
    if (!has_tenant)
      return Reject("tenant", "is required (the CloudEvents extension naming the tenant)");
  } else if (!has_tenant) {
    ev.tenant = options.principal_tenant;
  } else if (ev.tenant != options.principal_tenant) {
    return Reject("tenant", "a tenant key may only send events for its own tenant");
  }
  if (ev.type == UsageType::kUserActive) {
    if (!has_subject) return Reject("subject", "is required for user.active (the end user's id)");
  } else {
    ev.subject.clear();  // only user.active counts its subject
  }

  bool has_quantity = false, has_bytes = false;
  if (data) {
    for (auto field : *data) {
      std::string_view key = field.key;
      if (key == "quantity" && ev.type != UsageType::kMediaStored &&
          ev.type != UsageType::kUserActive) {
        if (has_quantity) return Reject("data.quantity", "appears more than once");
        if (!ReadInteger(field.value, "data.quantity", &ev.quantity, &reject)) return reject;
        if (ev.quantity < 1 || ev.quantity > kMaxCountQuantity) {
          return Reject("data.quantity",
                        "must be between 1 and " + std::to_string(kMaxCountQuantity));
        }
        has_quantity = true;
      } else if (key == "bytes" && ev.type == UsageType::kMediaStored) {
        if (has_bytes) return Reject("data.bytes", "appears more than once");
        if (!ReadInteger(field.value, "data.bytes", &ev.quantity, &reject)) return reject;
        if (ev.quantity == 0 || ev.quantity > kMaxStorageBytes || ev.quantity < -kMaxStorageBytes) {
          return Reject("data.bytes", "must be non-zero and at most 10^15 in magnitude");
        }
        has_bytes = true;
      } else {
        return Reject("data." + std::string(key).substr(0, 64),
                      "is not a field of " + std::string(UsageTypeName(ev.type)) + " data");
      }
    }
  }
  if (ev.type == UsageType::kMediaStored && !has_bytes) {
    return Reject("data.bytes", "is required for media.stored");
  }
  if (ev.type == UsageType::kUserActive) ev.quantity = 1;
  ParsedEvent ok;
  ok.event = std::move(ev);
  return ok;
}

dom::parser& ThreadParser() {
  thread_local dom::parser parser;
  return parser;
}

}  // namespace

Result<std::vector<ParsedEvent>> ParseEventBody(std::string_view body, BodyFormat format,
                                                const ParseOptions& options) {
  if (body.size() > kMaxRequestBytes) {
    return Error{ErrorCode::kTooLarge,
                 "must be at most " + std::to_string(kMaxRequestBytes) + " bytes", "body"};
  }
  dom::parser& parser = ThreadParser();
  std::vector<ParsedEvent> out;
  if (format == BodyFormat::kNdjson) {
    size_t pos = 0;
    while (pos < body.size()) {
      size_t nl = body.find('\n', pos);
      if (nl == std::string_view::npos) nl = body.size();
      std::string_view line = body.substr(pos, nl - pos);
      pos = nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank line
      if (out.size() == kMaxEventsPerRequest) {
        return Error{ErrorCode::kTooLarge,
                     "must hold at most " + std::to_string(kMaxEventsPerRequest) + " events",
                     "body"};
      }
      dom::element doc;
      if (auto err = parser.parse(line.data(), line.size(), true).get(doc)) {
        out.push_back(Reject("", std::string("malformed JSON: ") + simdjson::error_message(err)));
        continue;
      }
      out.push_back(ParseOne(doc, options));
    }
    if (out.empty()) return Error::Invalid("body", "holds no events");
    return out;
  }
  dom::element doc;
  if (auto err = parser.parse(body.data(), body.size(), true).get(doc)) {
    return Error::Invalid("body", std::string("malformed JSON: ") + simdjson::error_message(err));
  }
  if (format == BodyFormat::kSingle) {
    if (doc.type() != dom::element_type::OBJECT) {
      return Error::Invalid("body", "must be one CloudEvent object");
    }
    out.push_back(ParseOne(doc, options));
    return out;
  }
  dom::array arr;
  if (doc.get_array().get(arr) != simdjson::SUCCESS) {
    return Error::Invalid("body", "must be a JSON array of CloudEvents");
  }
  if (arr.size() > kMaxEventsPerRequest) {
    return Error{ErrorCode::kTooLarge,
                 "must hold at most " + std::to_string(kMaxEventsPerRequest) + " events", "body"};
  }
  if (arr.size() == 0) return Error::Invalid("body", "holds no events");
  out.reserve(arr.size());
  for (dom::element e : arr) out.push_back(ParseOne(e, options));
  return out;
}

}  // namespace caas::metering
