#include "http/problem.h"

#include <boost/json.hpp>

namespace caas::http {
namespace json = boost::json;

Response Problem(int status, std::string_view slug, std::string_view title, std::string_view detail,
                 const std::vector<Error>& field_errors) {
  json::object o;
  o["type"] = "urn:caas-billing:problem:" + std::string(slug);
  o["title"] = title;
  o["status"] = status;
  o["detail"] = detail;
  if (!field_errors.empty()) {
    json::array errs;
    for (const auto& e : field_errors) {
      json::object fe;
      fe["field"] = e.field;
      fe["reason"] = e.message;
      errs.push_back(std::move(fe));
    }
    o["errors"] = std::move(errs);
  }
  Response r;
  r.status = status;
  r.content_type = "application/problem+json";
  r.body = json::serialize(o);
  return r;
}

Response ProblemFromError(const Error& error, const std::vector<Error>& all) {
  std::vector<Error> fields = all;
  if (fields.empty() && !error.field.empty()) fields.push_back(error);
  switch (error.code) {
    case ErrorCode::kInvalidArgument: {
      std::string detail = error.field.empty() ? error.message : error.field + " " + error.message;
      return Problem(400, "invalid-request", "The request is not valid", detail, fields);
    }
    case ErrorCode::kNotFound:
      return Problem(404, "not-found", "Not found", error.message);
    case ErrorCode::kAlreadyExists:
      return Problem(409, "already-exists", "Already exists", error.message, fields);
    case ErrorCode::kConflict:
    case ErrorCode::kFailedPrecondition:
      return Problem(409, "conflict", "Conflict", error.message);
    case ErrorCode::kUnauthenticated:
      return Problem(401, "unauthenticated", "Authentication required", error.message);
    case ErrorCode::kPermissionDenied:
      return Problem(403, "forbidden", "Forbidden", error.message);
    case ErrorCode::kOutOfRange:
      return Problem(422, "out-of-range", "Value out of range", error.message, fields);
    case ErrorCode::kUnavailable:
      return Problem(503, "unavailable", "Service unavailable", error.message);
    case ErrorCode::kResourceExhausted:
      return Problem(507, "insufficient-storage", "Insufficient storage", error.message);
    case ErrorCode::kTooLarge:
      return Problem(413, "payload-too-large", "Payload too large", error.message, fields);
    case ErrorCode::kInternal:
      break;
  }
  return Problem(500, "internal", "Internal error", "an internal error occurred");
}

Response ProblemForStatus(int status, std::string_view detail) {
  switch (status) {
    case 400:
      return Problem(400, "malformed-request", "Malformed request", detail);
    case 404:
      return Problem(404, "not-found", "Not found", detail);
    case 405:
      return Problem(405, "method-not-allowed", "Method not allowed", detail);
    case 413:
      return Problem(413, "body-too-large", "Request body too large", detail);
    case 431:
      return Problem(431, "headers-too-large", "Request headers too large", detail);
    default:
      return Problem(status, "internal", "Internal error", detail);
  }
}

}  // namespace caas::http
