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

#include "core/log.h"
#include "core/text.h"

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

// A request body that grows as its bytes arrive. Beast's string_body reserves
// the whole declared Content-Length up front, so a client declaring 10 MiB
// would cost 10 MiB per connection before sending a byte.
struct RequestBody {
  using value_type = std::string;
  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(bhttp::header<isRequest, Fields>&, value_type& body) : body_(body) {}
    void init(boost::optional<std::uint64_t> const& length, beast::error_code& ec) {
      declared_ = static_cast<size_t>(std::min<std::uint64_t>(length.value_or(0), SIZE_MAX / 8));
      body_.reserve(std::min<size_t>(declared_, 64 << 10));
      ec = {};
    }
    // Memory follows what arrived: at most 4 times the bytes received, up to
    // the declared length (so a 170 KiB batch is copied once, not doubled
    // step by step), and no zero-filling before the copy.
    template <class ConstBufferSequence>
    std::size_t put(ConstBufferSequence const& buffers, beast::error_code& ec) {
      const size_t n = beast::buffer_bytes(buffers);
      const size_t need = body_.size() + n;
      if (need > body_.capacity()) body_.reserve(std::max(need, std::min(declared_, need * 4)));
      for (const auto b : beast::buffers_range_ref(buffers)) {
        body_.append(static_cast<const char*>(b.data()), b.size());
      }
      ec = {};
      return n;
    }
    void finish(beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
    size_t declared_ = 0;
  };
};

// RFC 9112 §6.3: a request with a Transfer-Encoding whose final coding is not
// chunked has no reliable length; we support no coding but chunked. Both
// with Content-Length is a smuggling vector. Returns why, or empty.
std::string BadTransferEncoding(const bhttp::request_parser<RequestBody>& parser) {
  const auto& h = parser.get();
  auto te = h.find(bhttp::field::transfer_encoding);
  if (te == h.end()) return {};
  if (h.find(bhttp::field::content_length) != h.end()) {
    return "a request may not have both Transfer-Encoding and Content-Length";
  }
  // Every field line and every coding in it must be "chunked", once.
  int codings = 0;
  auto range = h.equal_range(bhttp::field::transfer_encoding);
  for (auto it = range.first; it != range.second; ++it) {
    std::string_view v(it->value().data(), it->value().size());
    size_t pos = 0;
    while (pos <= v.size()) {
      size_t comma = v.find(',', pos);
      if (comma == std::string_view::npos) comma = v.size();
      std::string_view token = v.substr(pos, comma - pos);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t'))
        token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
        token.remove_suffix(1);
      std::string lower(token);
      for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (lower != "chunked") {
        return "Transfer-Encoding must be chunked (the only coding this server accepts), not \"" +
               std::string(TruncateUtf8(token, 64)) + "\"";
      }
      ++codings;
      pos = comma + 1;
    }
  }
  if (codings != 1) return "Transfer-Encoding must be chunked, once";
  return {};
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::vector<std::unique_ptr<asio::io_context>> MakeContexts(int n) {
  std::vector<std::unique_ptr<asio::io_context>> out;
  for (int i = 0; i < std::max(1, n); ++i) out.push_back(std::make_unique<asio::io_context>(1));
  return out;
}
}  // namespace

class Session;

class HttpServer::Impl {
 public:
  Impl(ServerOptions options, Handler handler, ErrorRenderer render_error)
      : options_(std::move(options)),
        handler_(std::move(handler)),
        render_error_(std::move(render_error)),
        ios_(MakeContexts(options_.threads)),
        acceptor_(*ios_[0]),
        signals_(*ios_[0]),
        grace_timer_(*ios_[0]),
        drain_timer_(*ios_[0]),
        sweep_timer_(*ios_[0]),
        accept_timer_(*ios_[0]) {}

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
    for (auto& io : ios_) guards_.emplace_back(io->get_executor());
    Accept();
    Sweep();
    std::vector<std::thread> threads;
    for (size_t i = 1; i < ios_.size(); ++i) threads.emplace_back([this, i] { ios_[i]->run(); });
    ios_[0]->run();
    for (auto& t : threads) t.join();
  }

  void Stop() {
    asio::post(*ios_[0], [this] { DoStop(); });
  }

  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  const ServerOptions& options() const { return options_; }
  Handler& handler() { return handler_; }
  ErrorRenderer& render_error() { return render_error_; }

  void Register(const std::shared_ptr<Session>& s) {
    std::lock_guard lock(sessions_mu_);
    sessions_.insert(s);
    connections_.store(sessions_.size(), std::memory_order_relaxed);
  }
  void Unregister(const std::shared_ptr<Session>& s) {
    std::lock_guard lock(sessions_mu_);
    sessions_.erase(s);
    connections_.store(sessions_.size(), std::memory_order_relaxed);
  }
  HttpServer::Stats stats() const {
    return HttpServer::Stats{connections_.load(std::memory_order_relaxed),
                             accept_errors_.load(std::memory_order_relaxed),
                             accept_paused_.load(std::memory_order_relaxed)};
  }

 private:
  void Accept();
  void AcceptLater(std::chrono::milliseconds after);
  void DoStop();
  void PollDrained();
  void Sweep();
  void StopAll() {
    for (auto& io : ios_) io->stop();
  }

  ServerOptions options_;
  Handler handler_;
  ErrorRenderer render_error_;
  // One io_context per thread, each run by its thread alone: a connection
  // lives on one thread (no strands, no cross-thread wake-ups), and a handler
  // that waits (an ingest group commit) holds up only its own thread's
  // connections. Connections are dealt out round-robin.
  std::vector<std::unique_ptr<asio::io_context>> ios_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  size_t next_io_ = 0;
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer grace_timer_;
  asio::steady_timer drain_timer_;
  // Timeouts: instead of a timer per read and write (a measurable cost per
  // request), sessions publish a deadline and this sweep closes the late.
  asio::steady_timer sweep_timer_;
  asio::steady_timer accept_timer_;
  std::atomic<bool> stopping_{false};
  int64_t last_accept_log_ms_ = 0;  // only touched on ios_[0]
  std::mutex sessions_mu_;
  std::set<std::shared_ptr<Session>> sessions_;  // guarded by sessions_mu_
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> accept_errors_{0};  // accept failed (out of descriptors, ...)
  std::atomic<uint64_t> accept_paused_{0};  // times accepting paused at the connection cap
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

  // Called by the sweep: closes the connection if its deadline has passed
  // (idle keep-alive, or a request or answer too slow to move).
  void CheckDeadline(int64_t now_ms) {
    const int64_t d = deadline_ms_.load(std::memory_order_relaxed);
    if (d == 0 || d > now_ms) return;
    asio::post(stream_.get_executor(), [self = shared_from_this(), now_ms] {
      const int64_t d2 = self->deadline_ms_.load(std::memory_order_relaxed);
      if (d2 == 0 || d2 > now_ms) return;
      boost::system::error_code ec;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      self->stream_.socket().close(ec);
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
    SetDeadline(server_.options().idle_timeout);
    // The first byte makes the connection busy: from then on a shutdown waits
    // for the answer.
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    busy_ = true;
    if (std::string bad = BadTransferEncoding(*parser_); !bad.empty()) {
      return WriteError(400, bad);  // and close: the rest is not a request
    }
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
    // Usually the whole (small) request arrived with its header: finish it
    // from the buffer, without another asynchronous operation.
    if (!parser_->is_done() && parser_->content_length() &&
        *parser_->content_length() <= buffer_.size()) {
      parser_->eager(true);
      beast::error_code put_ec;
      while (!parser_->is_done() && buffer_.size() > 0) {
        const size_t used = parser_->put(buffer_.data(), put_ec);
        buffer_.consume(used);
        if (put_ec || used == 0) break;
      }
      if (put_ec) return OnReadError(put_ec);
    }
    if (parser_->is_done()) return OnRead({});
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
    deadline_ms_.store(0, std::memory_order_relaxed);  // the handler runs
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
    SetDeadline(server_.options().idle_timeout);
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
    SetDeadline(std::chrono::seconds(2));
    DrainSome();
  }

  void DrainSome() {
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

  void SetDeadline(std::chrono::milliseconds after) {
    deadline_ms_.store(NowMs() + after.count(), std::memory_order_relaxed);
  }

  void Close() {
    deadline_ms_.store(0, std::memory_order_relaxed);
    boost::system::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
    server_.Unregister(shared_from_this());
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<RequestBody>> parser_;
  bool keep_alive_ = false;
  bool busy_ = false;  // only touched on this session's strand of execution
  bool linger_ = false;
  size_t lingered_bytes_ = 0;
  size_t body_limit_ = 0;
  std::atomic<int64_t> deadline_ms_{0};  // steady ms; 0: none (handler running)
};

void HttpServer::Impl::Accept() {
  if (stopping()) return;
  if (connections_.load(std::memory_order_relaxed) >= options_.max_connections) {
    // At the cap: leave new clients in the kernel's backlog for a moment.
    accept_paused_.fetch_add(1, std::memory_order_relaxed);
    return AcceptLater(std::chrono::milliseconds(50));
  }
  asio::io_context& io = *ios_[next_io_++ % ios_.size()];
  acceptor_.async_accept(io, [this](beast::error_code ec, tcp::socket s) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      // Out of descriptors (EMFILE/ENFILE) or another failure: retrying at
      // once would spin a core. Back off, and say so (once a second).
      accept_errors_.fetch_add(1, std::memory_order_relaxed);
      const int64_t now = NowMs();
      if (now - last_accept_log_ms_ >= 1000) {
        last_accept_log_ms_ = now;
        Log(LogLevel::kError, "accept_failed",
            {{"error", ec.message()},
             {"connections", static_cast<int64_t>(connections_.load())},
             {"failures", static_cast<int64_t>(accept_errors_.load())}});
      }
      return AcceptLater(std::chrono::milliseconds(100));
    }
    std::make_shared<Session>(std::move(s), *this)->Start();
    Accept();
  });
}

void HttpServer::Impl::AcceptLater(std::chrono::milliseconds after) {
  accept_timer_.expires_after(after);
  accept_timer_.async_wait([this](const boost::system::error_code& e) {
    if (!e) Accept();
  });
}

void HttpServer::Impl::DoStop() {
  if (stopping_.exchange(true)) return;
  boost::system::error_code ec;
  acceptor_.close(ec);
  signals_.cancel(ec);
  accept_timer_.cancel(ec);
  std::vector<std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(sessions_mu_);
    sessions.assign(sessions_.begin(), sessions_.end());
  }
  for (auto& s : sessions) s->CloseIfIdle();
  grace_timer_.expires_after(options_.shutdown_grace);
  grace_timer_.async_wait([this](const boost::system::error_code& e) {
    if (!e) StopAll();
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
    sweep_timer_.cancel(ec);
    for (auto& g : guards_) g.reset();  // each context returns once idle
    return;
  }
  drain_timer_.expires_after(std::chrono::milliseconds(20));
  drain_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) PollDrained();
  });
}

void HttpServer::Impl::Sweep() {
  std::vector<std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(sessions_mu_);
    sessions.assign(sessions_.begin(), sessions_.end());
  }
  const int64_t now = NowMs();
  for (auto& s : sessions) s->CheckDeadline(now);
  sweep_timer_.expires_after(std::chrono::milliseconds(250));
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) Sweep();
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
HttpServer::Stats HttpServer::stats() const { return impl_->stats(); }

}  // namespace caas::http
