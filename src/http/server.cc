#include "http/server.h"

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace caas::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {
// A 64 KiB read buffer: smaller ones make Beast read large bodies in many
// small pieces (3x slower ingest, measured).
constexpr size_t kReadBufferBytes = 64 << 10;
constexpr size_t kMaxLingerBytes = 64 << 20;
}  // namespace

class Session;

class HttpServer::Impl {
 public:
  Impl(ServerOptions options, Handler handler, ErrorRenderer render_error)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        render_error_(std::move(render_error)),
        acceptor_(io_),
        signals_(io_),
        grace_timer_(io_),
        drain_timer_(io_) {}

  void Listen() {
    tcp::endpoint ep(asio::ip::make_address(options_.host), options_.port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    boost::system::error_code ec;
    acceptor_.bind(ep, ec);
    if (ec) {
      throw std::runtime_error("cannot listen on " + options_.host + ":" +
                               std::to_string(options_.port) + ": " + ec.message());
    }
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }

  void Run() {
    if (options_.stop_on_signals) {
      signals_.add(SIGTERM);
      signals_.add(SIGINT);
      signals_.async_wait([this](const boost::system::error_code& ec, int) {
        if (!ec) DoStop();
      });
    }
    Accept();
    std::vector<std::thread> threads;
    for (int i = 1; i < options_.threads; ++i) threads.emplace_back([this] { io_.run(); });
    io_.run();
    for (auto& t : threads) t.join();
  }

  void Stop() {
    asio::post(io_, [this] { DoStop(); });
  }

  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  const ServerOptions& options() const { return options_; }
  Handler& handler() { return handler_; }
  ErrorRenderer& render_error() { return render_error_; }

  void Register(const std::shared_ptr<Session>& s) {
    std::lock_guard lock(sessions_mu_);
    sessions_.insert(s);
  }
  void Unregister(const std::shared_ptr<Session>& s) {
    std::lock_guard lock(sessions_mu_);
    sessions_.erase(s);
  }

 private:
  void Accept();
  void DoStop();
  void PollDrained();

  ServerOptions options_;
  Handler handler_;
  ErrorRenderer render_error_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer grace_timer_;
  asio::steady_timer drain_timer_;
  std::atomic<bool> stopping_{false};
  std::mutex sessions_mu_;
  std::set<std::shared_ptr<Session>> sessions_;  // guarded by sessions_mu_
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), server_(server) {
    buffer_.reserve(kReadBufferBytes);
  }

  void Start() {
    server_.Register(shared_from_this());
    stream_.socket().set_option(tcp::no_delay(true));
    Read();
  }

  // Called on Stop(): a connection waiting for its next request is closed; one
  // in the middle of a request finishes it first.
  void CloseIfIdle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->busy_) {
        boost::system::error_code ec;
        self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        self->stream_.socket().close(ec);
      }
    });
  }

 private:
  void Read() {
    busy_ = false;
    if (server_.stopping()) return Close();
    parser_.emplace();
    // Beast checks Content-Length against the limit while parsing the header,
    // before the target is known: start with the largest limit, then narrow
    // it to the route's in OnHeader.
    body_limit_ = std::max(server_.options().max_body_bytes, server_.options().largest_body_bytes);
    parser_->body_limit(body_limit_);
    parser_->header_limit(static_cast<uint32_t>(server_.options().max_header_bytes));
    stream_.expires_after(server_.options().idle_timeout);
    // The first byte makes the connection busy: from then on a shutdown waits
    // for the answer.
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    busy_ = true;
    body_limit_ = server_.options().max_body_bytes;
    if (server_.options().body_limit_for) {
      const auto target = parser_->get().target();
      body_limit_ =
          server_.options().body_limit_for(std::string_view(target.data(), target.size()));
    }
    if (auto length = parser_->content_length(); length && *length > body_limit_) {
      return OnReadError(bhttp::error::body_limit);
    }
    parser_->body_limit(body_limit_);
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec2, size_t) { self->OnRead(ec2); });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == beast::error::timeout || ec == asio::error::connection_reset ||
        ec == asio::error::eof || ec == asio::error::bad_descriptor) {
      return Close();
    }
    if (ec == bhttp::error::body_limit) {
      return WriteError(413, "the request body exceeds " + std::to_string(body_limit_) + " bytes");
    }
    if (ec == bhttp::error::header_limit) {
      return WriteError(431, "the request headers exceed " +
                                 std::to_string(server_.options().max_header_bytes) + " bytes");
    }
    return WriteError(400, "malformed HTTP request: " + ec.message());
  }

  void OnRead(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    auto msg = parser_->release();
    Request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    for (const auto& f : msg) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      req.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    req.body = std::move(msg.body());
    keep_alive_ = msg.keep_alive();
    Response res;
    if (!ParseTarget(req.target, &req.path, &req.query)) {
      res = server_.render_error()(400, "the request target has a bad percent-encoding");
    } else {
      res = server_.handler()(req);
    }
    Write(std::move(res), msg.version());
  }

  void WriteError(int status, const std::string& detail) {
    keep_alive_ = false;
    linger_ = true;
    Write(server_.render_error()(status, detail), 11);
  }

  void Write(Response res, unsigned version) {
    auto out = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(res.status), version);
    out->set(bhttp::field::content_type, res.content_type);
    for (auto& [k, v] : res.headers) out->set(k, v);
    out->body() = std::move(res.body);
    const bool keep = keep_alive_ && !server_.stopping();
    out->keep_alive(keep);
    out->prepare_payload();
    stream_.expires_after(server_.options().idle_timeout);
    bhttp::async_write(stream_, *out,
                       [self = shared_from_this(), out, keep](beast::error_code ec, size_t) {
                         if (!ec && self->linger_) return self->Linger();
                         if (ec || !keep) return self->Close();
                         self->Read();
                       });
  }

  // After an error answer to a request whose body was not read (413), close
  // gracefully: stop sending, then read and discard what the client is still
  // sending, so that closing does not reset the connection before the client
  // has read the answer. Bounded in bytes and time.
  void Linger() {
    boost::system::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    linger_deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    DrainSome();
  }

  void DrainSome() {
    stream_.expires_at(linger_deadline_);
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(kReadBufferBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->lingered_bytes_ += n;
                              if (ec || self->lingered_bytes_ > kMaxLingerBytes) {
                                return self->Close();
                              }
                              self->DrainSome();
                            });
  }

  void Close() {
    boost::system::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
    server_.Unregister(shared_from_this());
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bool keep_alive_ = false;
  bool busy_ = false;  // only touched on this session's strand of execution
  bool linger_ = false;
  size_t lingered_bytes_ = 0;
  size_t body_limit_ = 0;
  std::chrono::steady_clock::time_point linger_deadline_;
};

void HttpServer::Impl::Accept() {
  acceptor_.async_accept(asio::make_strand(io_), [this](beast::error_code ec, tcp::socket s) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    } else {
      std::make_shared<Session>(std::move(s), *this)->Start();
    }
    if (!stopping()) Accept();
  });
}

void HttpServer::Impl::DoStop() {
  if (stopping_.exchange(true)) return;
  boost::system::error_code ec;
  acceptor_.close(ec);
  signals_.cancel(ec);
  std::vector<std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(sessions_mu_);
    sessions.assign(sessions_.begin(), sessions_.end());
  }
  for (auto& s : sessions) s->CloseIfIdle();
  grace_timer_.expires_after(options_.shutdown_grace);
  grace_timer_.async_wait([this](const boost::system::error_code& e) {
    if (!e) io_.stop();
  });
  PollDrained();
}

// When the last session ends the only work left is the grace timer: cancel it
// then, so that Run() returns at once.
void HttpServer::Impl::PollDrained() {
  bool empty;
  {
    std::lock_guard lock(sessions_mu_);
    empty = sessions_.empty();
  }
  if (empty) {
    boost::system::error_code ec;
    grace_timer_.cancel(ec);
    return;
  }
  drain_timer_.expires_after(std::chrono::milliseconds(20));
  drain_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) PollDrained();
  });
}

HttpServer::HttpServer(ServerOptions options, Handler handler, ErrorRenderer render_error)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler),
                                   std::move(render_error))) {}
HttpServer::~HttpServer() = default;
void HttpServer::Listen() { impl_->Listen(); }
uint16_t HttpServer::port() const { return impl_->port(); }
void HttpServer::Run() { impl_->Run(); }
void HttpServer::Stop() { impl_->Stop(); }

}  // namespace caas::http
