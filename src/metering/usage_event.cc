#include "metering/usage_event.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/log.h"
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

// Equality of short keys, always inline (ParseOne is the hot loop of
// ingest; an out-of-line std::string_view::compare there cost 15%).
[[gnu::always_inline]] inline bool Is(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

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
      if (Is(seen[i], key)) return Reject(std::string(key), "appears more than once");
    }
    if (seen_count < seen.size()) seen[seen_count++] = key;
    if (Is(key, "specversion")) {
      std::string v;
      if (!ReadText(value, key, 8, &v, &reject, true)) return reject;
      if (v != "1.0") return Reject("specversion", "must be \"1.0\"");
      has_spec = true;
    } else if (Is(key, "id")) {
      if (!ReadText(value, key, kMaxIdBytes, &ev.id, &reject)) return reject;
      has_id = true;
    } else if (Is(key, "source")) {
      if (!ReadText(value, key, kMaxSourceBytes, &ev.source, &reject)) return reject;
      if (ev.source.find(' ') != std::string::npos) {
        return Reject("source", "must be a URI-reference (no spaces)");
      }
      has_source = true;
    } else if (Is(key, "type")) {
      if (!ReadText(value, key, 64, &type_name, &reject, true)) return reject;
      has_type = true;
    } else if (Is(key, "time")) {
      if (!ReadText(value, key, 64, &time_text, &reject, true)) return reject;
      auto t = ParseRfc3339(time_text);
      if (!t) return Reject("time", "must be an RFC 3339 date-time: " + t.error().message);
      ev.time = *t;
      has_time = true;
    } else if (Is(key, "tenant")) {
      if (!ReadText(value, key, kMaxTenantBytes, &ev.tenant, &reject)) return reject;
      has_tenant = true;
    } else if (Is(key, "subject")) {
      if (!ReadText(value, key, kMaxSubjectBytes, &ev.subject, &reject)) return reject;
      has_subject = true;
    } else if (Is(key, "datacontenttype")) {
      std::string v;
      if (!ReadText(value, key, 128, &v, &reject)) return reject;
      if (v != "application/json" && v.rfind("application/json;", 0) != 0) {
        return Reject("datacontenttype", "must be application/json");
      }
    } else if (Is(key, "dataschema")) {
      std::string v;
      if (!ReadText(value, key, kMaxSourceBytes, &v, &reject)) return reject;
    } else if (Is(key, "data")) {
      dom::object d;
      if (value.get_object().get(d) != simdjson::SUCCESS) {
        return Reject("data", "must be an object, not " + std::string(TypeName(value.type())));
      }
      data = d;
    } else if (Is(key, "data_base64")) {
      return Reject("data_base64", "binary data is not accepted; use a JSON object in data");
    } else if (IsExtensionName(key)) {
      // Other extension attributes (traceparent, ...) are allowed and ignored,
      // as long as they are scalars.
      auto t = value.type();
      if (t == dom::element_type::ARRAY || t == dom::element_type::OBJECT) {
        return Reject(std::string(key), "an extension attribute must be a scalar");
      }
    } else {
      return Reject(std::string(TruncateUtf8(key, 64)),
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
      if (Is(key, "quantity") && ev.type != UsageType::kMediaStored &&
          ev.type != UsageType::kUserActive) {
        if (has_quantity) return Reject("data.quantity", "appears more than once");
        if (!ReadInteger(field.value, "data.quantity", &ev.quantity, &reject)) return reject;
        if (ev.quantity < 1 || ev.quantity > kMaxCountQuantity) {
          return Reject("data.quantity",
                        "must be between 1 and " + std::to_string(kMaxCountQuantity));
        }
        has_quantity = true;
      } else if (Is(key, "bytes") && ev.type == UsageType::kMediaStored) {
        if (has_bytes) return Reject("data.bytes", "appears more than once");
        if (!ReadInteger(field.value, "data.bytes", &ev.quantity, &reject)) return reject;
        if (ev.quantity == 0 || ev.quantity > kMaxStorageBytes || ev.quantity < -kMaxStorageBytes) {
          return Reject("data.bytes", "must be non-zero and at most 10^15 in magnitude");
        }
        has_bytes = true;
      } else {
        return Reject("data." + std::string(TruncateUtf8(key, 64)),
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

// ---- Numbers beyond 64-bit integers and doubles ----
// simdjson refuses a whole document over one such number. So that only the
// event holding it is rejected (naming the field), the array is split into
// its elements by a small scanner and each is parsed alone.

bool IsNumberError(simdjson::error_code e) {
  return e == simdjson::NUMBER_ERROR || e == simdjson::NUMBER_OUT_OF_RANGE;
}

size_t SkipSpace(std::string_view t, size_t i) {
  while (i < t.size() && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) ++i;
  return i;
}

// The end of the JSON string starting at t[i] == '"', or npos.
size_t StringEnd(std::string_view t, size_t i) {
  for (++i; i < t.size(); ++i) {
    if (t[i] == '\\') {
      ++i;
    } else if (t[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// The end of the JSON value starting at t[i] (structure only), or npos.
size_t ValueEnd(std::string_view t, size_t i) {
  int depth = 0;
  for (; i < t.size(); ++i) {
    const char c = t[i];
    if (c == '"') {
      i = StringEnd(t, i);
      if (i == std::string_view::npos) return i;
      --i;
    } else if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      if (depth == 0) return i;
      if (--depth == 0) return i + 1;
    } else if (c == ',' && depth == 0) {
      return i;
    }
    if (depth > 64) return std::string_view::npos;
  }
  return depth == 0 ? i : std::string_view::npos;
}

// The elements of a top-level JSON array, as text; nullopt if the text is not
// an array (structurally).
[[gnu::cold]] std::optional<std::vector<std::string_view>> SplitArray(std::string_view t) {
  size_t i = SkipSpace(t, 0);
  if (i >= t.size() || t[i] != '[') return std::nullopt;
  std::vector<std::string_view> out;
  i = SkipSpace(t, i + 1);
  if (i < t.size() && t[i] == ']')
    return SkipSpace(t, i + 1) == t.size() ? std::optional(out) : std::nullopt;
  for (;;) {
    i = SkipSpace(t, i);
    const size_t end = ValueEnd(t, i);
    if (end == std::string_view::npos || end == i) return std::nullopt;
    out.push_back(t.substr(i, end - i));
    i = SkipSpace(t, end);
    if (i >= t.size()) return std::nullopt;
    if (t[i] == ']') break;
    if (t[i] != ',') return std::nullopt;
    ++i;
  }
  if (SkipSpace(t, i + 1) != t.size()) return std::nullopt;
  return out;
}

bool NumberFits(std::string_view n) {
  if (n.find_first_of(".eE") == std::string_view::npos) {
    int64_t v;
    auto r = std::from_chars(n.data(), n.data() + n.size(), v);
    return r.ec == std::errc() && r.ptr == n.data() + n.size();
  }
  const std::string copy(n);
  errno = 0;
  const double d = std::strtod(copy.c_str(), nullptr);
  return errno != ERANGE && std::isfinite(d);
}

// The dotted path of the first number in an object that fits neither int64
// nor a double ("data.quantity"), if any.
[[gnu::cold]] std::optional<std::string> BadNumberField(std::string_view t, size_t& i,
                                                        const std::string& path, int depth) {
  i = SkipSpace(t, i);
  if (i >= t.size() || depth > 32) return std::nullopt;
  if (t[i] == '{') {
    i = SkipSpace(t, i + 1);
    while (i < t.size() && t[i] != '}') {
      if (t[i] != '"') return std::nullopt;
      const size_t kend = StringEnd(t, i);
      if (kend == std::string_view::npos) return std::nullopt;
      const std::string key(TruncateUtf8(t.substr(i + 1, kend - i - 2), 64));
      i = SkipSpace(t, kend);
      if (i >= t.size() || t[i] != ':') return std::nullopt;
      ++i;
      if (auto bad = BadNumberField(t, i, path.empty() ? key : path + "." + key, depth + 1)) {
        return bad;
      }
      i = SkipSpace(t, i);
      if (i < t.size() && t[i] == ',') i = SkipSpace(t, i + 1);
    }
    ++i;
    return std::nullopt;
  }
  if (t[i] == '[') {
    i = SkipSpace(t, i + 1);
    for (int k = 0; i < t.size() && t[i] != ']'; ++k) {
      if (auto bad = BadNumberField(t, i, path + "[" + std::to_string(k) + "]", depth + 1)) {
        return bad;
      }
      i = SkipSpace(t, i);
      if (i < t.size() && t[i] == ',') i = SkipSpace(t, i + 1);
    }
    ++i;
    return std::nullopt;
  }
  if (t[i] == '"') {
    i = StringEnd(t, i);
    if (i == std::string_view::npos) i = t.size();
    return std::nullopt;
  }
  const size_t start = i;
  while (i < t.size() && std::string_view("+-0123456789.eE").find(t[i]) != std::string_view::npos) {
    ++i;
  }
  if (i > start && !NumberFits(t.substr(start, i - start))) return path;
  while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']') ++i;  // true/false/null
  return std::nullopt;
}

[[gnu::cold, gnu::noinline]] ParsedEvent RejectNumber(std::string_view element) {
  size_t i = 0;
  auto field = BadNumberField(element, i, "", 0);
  return Reject(field.value_or(""),
                "is a number beyond what a 64-bit integer or a double can hold");
}

dom::parser& ThreadParser() {
  thread_local dom::parser parser;
  return parser;
}

}  // namespace

ParsedEvent ParseBinaryEvent(const std::vector<std::pair<std::string, std::string>>& headers,
                             std::string_view body, const ParseOptions& options) {
  std::string json = "{";
  std::vector<std::string> seen;
  std::string content_type;
  for (const auto& [name, value] : headers) {
    if (name == "content-type") content_type = value;
    if (name.size() <= 3 || name.compare(0, 3, "ce-") != 0) continue;
    const std::string attr = name.substr(3);
    if (attr == "data" || attr == "datacontenttype" || attr == "data_base64") {
      return Reject(attr, "is not an attribute header in binary mode (the body is the data)");
    }
    if (std::find(seen.begin(), seen.end(), attr) != seen.end()) {
      return Reject(std::string(TruncateUtf8(attr, 64)), "appears more than once");
    }
    seen.push_back(attr);
    // Header values are percent-encoded (CloudEvents HTTP binding, 3.1.3.2).
    std::string decoded;
    for (size_t i = 0; i < value.size(); ++i) {
      auto hex = [](char c) {
        return c >= '0' && c <= '9'   ? c - '0'
               : c >= 'a' && c <= 'f' ? c - 'a' + 10
               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                      : -1;
      };
      if (value[i] == '%' && i + 2 < value.size() && hex(value[i + 1]) >= 0 &&
          hex(value[i + 2]) >= 0) {
        decoded.push_back(static_cast<char>(hex(value[i + 1]) * 16 + hex(value[i + 2])));
        i += 2;
      } else {
        decoded.push_back(value[i]);
      }
    }
    if (json.size() > 1) json += ',';
    json += JsonQuote(attr) + ":" + JsonQuote(decoded);
  }
  std::string_view media = std::string_view(content_type).substr(0, content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  const bool json_body = media == "application/json" || media.empty();
  if (body.find_first_not_of(" \t\r\n") != std::string_view::npos) {
    if (!json_body) {
      return Reject("datacontenttype",
                    "must be application/json (the Content-Type of a binary-mode event)");
    }
    if (json.size() > 1) json += ',';
    json += "\"data\":";
    json.append(body);
  }
  json += '}';
  dom::parser& parser = ThreadParser();
  dom::element doc;
  if (auto err = parser.parse(json.data(), json.size(), true).get(doc)) {
    if (IsNumberError(err)) return RejectNumber(json);
    return Reject("data", std::string("must be a JSON object: ") + simdjson::error_message(err));
  }
  return ParseOne(doc, options);
}

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
        out.push_back(IsNumberError(err) ? RejectNumber(line)
                                         : Reject("", std::string("malformed JSON: ") +
                                                          simdjson::error_message(err)));
        continue;
      }
      out.push_back(ParseOne(doc, options));
    }
    if (out.empty()) return Error::Invalid("body", "holds no events");
    return out;
  }
  dom::element doc;
  if (auto err = parser.parse(body.data(), body.size(), true).get(doc)) {
    if (!IsNumberError(err)) {
      return Error::Invalid("body", std::string("malformed JSON: ") + simdjson::error_message(err));
    }
    // One number out of range: only the event holding it is rejected.
    if (format == BodyFormat::kSingle) {
      out.push_back(RejectNumber(body));
      return out;
    }
    auto elements = SplitArray(body);
    if (!elements) {
      return Error::Invalid("body", std::string("malformed JSON: ") + simdjson::error_message(err));
    }
    if (elements->size() > kMaxEventsPerRequest) {
      return Error{ErrorCode::kTooLarge,
                   "must hold at most " + std::to_string(kMaxEventsPerRequest) + " events", "body"};
    }
    if (elements->empty()) return Error::Invalid("body", "holds no events");
    for (std::string_view e : *elements) {
      dom::element one;
      if (auto err1 = parser.parse(e.data(), e.size(), true).get(one)) {
        out.push_back(IsNumberError(err1) ? RejectNumber(e)
                                          : Reject("", std::string("malformed JSON: ") +
                                                           simdjson::error_message(err1)));
        continue;
      }
      out.push_back(ParseOne(one, options));
    }
    return out;
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
