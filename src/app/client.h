// A small HTTP/1.1 client for the CLI commands that talk to a running server
// (ingest, usage): keep-alive, one reconnect on a dropped connection.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <memory>
#include <optional>
#include <string>

#include "core/status.h"

namespace caas::app {

struct ClientResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

class ApiClient {
 public:
  // `url`: http://HOST:PORT (no path). `key`: the bearer API key.
  static Result<std::unique_ptr<ApiClient>> Create(const std::string& url, std::string key);
  ~ApiClient();

  // Throws std::runtime_error when the server cannot be reached.
  ClientResponse Send(const std::string& method, const std::string& target,
                      const std::string& content_type, const std::string& body);

 private:
  ApiClient(std::string host, std::string port, std::string key);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Where a CLI command sends its requests.
struct ClientTarget {
  std::string url;
  std::string key;
};

// Sends one request with a JSON body (or none). On a 200 answer returns it
// parsed and sets *exit_code to 0; otherwise prints the problem to stderr and
// sets *exit_code: 1 for a 409 (the state forbids it), 2 for anything else.
std::optional<boost::json::object> CallJson(const ClientTarget& target, const std::string& method,
                                            const std::string& path, const std::string& body,
                                            int* exit_code);

// A JSON value as text for the CLI's tables: strings as they are, null as
// "-", anything else serialized.
std::string JsonText(const boost::json::value& v);

}  // namespace caas::app
