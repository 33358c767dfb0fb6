// RFC 9457 problem details (application/problem+json).
//
// Every error answer of the API has this shape:
//   {"type": "urn:caas-billing:problem:<slug>", "title": "...", "status": 400,
//    "detail": "...", "request_id": "req_...",
//    "errors": [{"field": "billing_email", "reason": "..."}]}
// `errors` is present when specific input fields are at fault.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "http/message.h"

namespace caas::http {

Response Problem(int status, std::string_view slug, std::string_view title, std::string_view detail,
                 const std::vector<Error>& field_errors = {});

// Maps a domain Error to its HTTP problem (400, 404, 409, ...).
Response ProblemFromError(const Error& error, const std::vector<Error>& all = {});

// The problem for statuses the transport produces (400, 404, 405, 413, 431, 500).
Response ProblemForStatus(int status, std::string_view detail);

}  // namespace caas::http
