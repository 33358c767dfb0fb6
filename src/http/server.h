// An HTTP/1.1 server on Boost.Beast: keep-alive, bounded headers and bodies,
// idle timeouts, graceful shutdown.
//
// Handlers run on the I/O threads and may block briefly (a storage write).
// Stop() stops accepting, lets every request already being read or handled
// finish and be answered (with "Connection: close"), closes idle keep-alive
// connections, and makes Run() return once all connections are gone, or
// after `shutdown_grace` at the latest.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "http/message.h"

namespace caas::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: pick a free port (see HttpServer::port())
  int threads = 2;
  size_t max_body_bytes = 1 << 20;
  // A larger limit for some request targets (bulk ingest), at most
  // `largest_body_bytes`.
  std::function<size_t(std::string_view target)> body_limit_for;
  size_t largest_body_bytes = 0;
  size_t max_header_bytes = 16 << 10;
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds shutdown_grace{15};
  // Open connections at most; beyond it new clients wait in the backlog.
  size_t max_connections = 10'000;
  bool stop_on_signals = false;  // SIGTERM and SIGINT call Stop()
};

using Handler = std::function<Response(Request&)>;

// Answers the server itself produces (oversized body, malformed HTTP) before
// a handler runs; the API layer renders them as problem+json.
using ErrorRenderer = std::function<Response(int status, const std::string& detail)>;

class HttpServer {
 public:
  HttpServer(ServerOptions options, Handler handler, ErrorRenderer render_error);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens; throws std::runtime_error when the address is taken.
  void Listen();
  uint16_t port() const;
  // Serves on options.threads threads until Stop(); then drains and returns.
  void Run();
  // Thread-safe (only posts work to the I/O threads).
  void Stop();

  struct Stats {
    uint64_t connections = 0;
    uint64_t accept_errors = 0;
    uint64_t accept_paused = 0;
  };
  Stats stats() const;

  class Impl;  // server.cc

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace caas::http
