#include "payments/webhook_signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <charconv>
#include <vector>

namespace caas::payments {
namespace {

Error Refused(std::string message) {
  return Error{ErrorCode::kUnauthenticated, std::move(message), "Stripe-Signature"};
}

std::array<unsigned char, 32> Hmac(std::string_view secret, int64_t t, std::string_view body) {
  std::string payload = std::to_string(t);
  payload += '.';
  payload.append(body);
  std::array<unsigned char, 32> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), mac.data(), &len);
  return mac;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// 64 hex digits into 32 bytes; false if it is anything else.
bool DecodeSignature(std::string_view hex, std::array<unsigned char, 32>& out) {
  if (hex.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    const int hi = HexDigit(hex[2 * i]), lo = HexDigit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return true;
}

}  // namespace

std::string StripeSignatureV1(std::string_view secret, int64_t t, std::string_view raw_body) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto mac = Hmac(secret, t, raw_body);
  std::string out;
  for (const unsigned char b : mac) {
    out += kHex[b >> 4];
    out += kHex[b & 0xF];
  }
  return out;
}

std::string StripeSignatureHeader(std::string_view secret, int64_t t, std::string_view raw_body) {
  return "t=" + std::to_string(t) + ",v1=" + StripeSignatureV1(secret, t, raw_body);
}

Status VerifyStripeSignature(std::string_view header, std::string_view raw_body,
                             std::string_view secret, Instant now, std::chrono::seconds tolerance) {
  if (header.empty()) return Refused("no Stripe-Signature header");
  if (header.size() > 4096) return Refused("the Stripe-Signature header is too long");
  bool have_t = false;
  int64_t t = 0;
  std::vector<std::array<unsigned char, 32>> v1;
  size_t at = 0;
  while (at <= header.size()) {
    const size_t comma = std::min(header.find(',', at), header.size());
    const std::string_view item = header.substr(at, comma - at);
    at = comma + 1;
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) return Refused("malformed Stripe-Signature header");
    const std::string_view scheme = item.substr(0, eq), value = item.substr(eq + 1);
    if (scheme == "t") {
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), t);
      if (ec != std::errc() || p != value.data() + value.size() || value.empty()) {
        return Refused("malformed timestamp in Stripe-Signature");
      }
      have_t = true;
    } else if (scheme == "v1") {
      std::array<unsigned char, 32> sig{};
      if (DecodeSignature(value, sig)) v1.push_back(sig);  // undecodable: skipped
    }
    // Other schemes (v0, ...) are ignored.
  }
  if (!have_t) return Refused("no timestamp in Stripe-Signature");
  if (v1.empty()) return Refused("no v1 signature in Stripe-Signature");
  const int64_t age = ToUnixSeconds(now) - t;
  if (age > tolerance.count() || -age > tolerance.count()) {
    return Refused("the signature's timestamp is outside the tolerance");
  }
  const auto expected = Hmac(secret, t, raw_body);
  bool match = false;
  for (const auto& sig : v1) {
    match |= CRYPTO_memcmp(sig.data(), expected.data(), expected.size()) == 0;
  }
  if (!match) return Refused("no v1 signature matches");
  return Status::Ok();
}

}  // namespace caas::payments
