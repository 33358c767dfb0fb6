// A small HTTP/1.1 client for the CLI commands that talk to a running server
// (ingest, usage): keep-alive, one reconnect on a dropped connection.
#pragma once

#include <memory>
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

}  // namespace caas::app
