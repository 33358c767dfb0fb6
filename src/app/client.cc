#include "app/client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <iostream>
#include <optional>
#include <stdexcept>

namespace caas::app {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;

struct ApiClient::Impl {
  std::string host, port, key;
  boost::asio::io_context io;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  void Connect() {
    tcp::resolver resolver(io);
    stream.emplace(io);
    stream->expires_after(std::chrono::seconds(10));
    stream->connect(resolver.resolve(host, port));
    stream->socket().set_option(tcp::no_delay(true));
    buffer.clear();
  }
};

ApiClient::ApiClient(std::string host, std::string port, std::string key)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = std::move(port);
  impl_->key = std::move(key);
}
ApiClient::~ApiClient() = default;

Result<std::unique_ptr<ApiClient>> ApiClient::Create(const std::string& url, std::string key) {
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) return Error::Invalid("--url", "must start with http://");
  std::string rest = url.substr(prefix.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || rest.find('/') != std::string::npos) {
    return Error::Invalid("--url", "must be http://HOST:PORT");
  }
  if (key.empty()) {
    return Error::Invalid("--key", "an API key is required (--key or CAAS_BILLING_API_KEY)");
  }
  return std::unique_ptr<ApiClient>(
      new ApiClient(rest.substr(0, colon), rest.substr(colon + 1), std::move(key)));
}

ClientResponse ApiClient::Send(const std::string& method, const std::string& target,
                               const std::string& content_type, const std::string& body) {
  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
  req.set(bhttp::field::host, impl_->host);
  req.set(bhttp::field::authorization, "Bearer " + impl_->key);
  req.set(bhttp::field::user_agent, "caas-billing-cli");
  if (!content_type.empty()) req.set(bhttp::field::content_type, content_type);
  req.body() = body;
  req.keep_alive(true);
  req.prepare_payload();
  for (int attempt = 0;; ++attempt) {
    try {
      if (!impl_->stream) impl_->Connect();
      impl_->stream->expires_after(std::chrono::seconds(120));
      bhttp::write(*impl_->stream, req);
      bhttp::response_parser<bhttp::string_body> parser;
      parser.body_limit(64 << 20);
      bhttp::read(*impl_->stream, impl_->buffer, parser);
      auto res = parser.release();
      ClientResponse out;
      out.status = res.result_int();
      out.content_type = std::string(res[bhttp::field::content_type]);
      out.body = std::move(res.body());
      if (!res.keep_alive()) impl_->stream.reset();
      return out;
    } catch (const std::exception& e) {
      impl_->stream.reset();
      if (attempt >= 1) {
        throw std::runtime_error("cannot reach http://" + impl_->host + ":" + impl_->port + ": " +
                                 e.what());
      }
    }
  }
}

std::optional<boost::json::object> CallJson(const ClientTarget& target, const std::string& method,
                                            const std::string& path, const std::string& body,
                                            int* exit_code) {
  auto client = ApiClient::Create(target.url, target.key);
  if (!client) {
    std::cerr << "caas-billing: " << client.error().field << " " << client.error().message << "\n";
    *exit_code = 2;
    return std::nullopt;
  }
  ClientResponse r;
  try {
    r = (*client)->Send(method, path, body.empty() ? "" : "application/json", body);
  } catch (const std::exception& e) {
    std::cerr << "caas-billing: " << e.what() << "\n";
    *exit_code = 2;
    return std::nullopt;
  }
  if (r.status < 200 || r.status > 299) {
    std::cerr << "caas-billing: the server answered " << r.status << ": " << r.body << "\n";
    *exit_code = r.status == 409 ? 1 : 2;
    return std::nullopt;
  }
  boost::json::error_code ec;
  boost::json::value v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) {
    std::cerr << "caas-billing: the server's answer is not a JSON object\n";
    *exit_code = 2;
    return std::nullopt;
  }
  *exit_code = 0;
  return std::move(v.as_object());
}

std::string JsonText(const boost::json::value& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return std::string(v.as_string());
  return boost::json::serialize(v);
}

}  // namespace caas::app
