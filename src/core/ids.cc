#include "core/ids.h"

#include <sys/random.h>

#include <cerrno>

namespace caas {
namespace {

constexpr char kCrockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool IsCrockford(char c) {
  for (const char* p = kCrockford; *p != '\0'; ++p) {
    if (*p == c) return true;
  }
  return false;
}

}  // namespace

void SecureRandomBytes(void* out, size_t n) {
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    const ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      AbortWithMessage("SecureRandomBytes", "getrandom failed");
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
}

std::string RandomToken(size_t n_bytes) {
  std::string bytes(n_bytes, '\0');
  SecureRandomBytes(bytes.data(), n_bytes);
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kBase64Url[(acc >> bits) & 0x3F]);
    }
  }
  if (bits > 0) out.push_back(kBase64Url[(acc << (6 - bits)) & 0x3F]);
  return out;
}

std::string IdGenerator::Next(std::string_view prefix) {
  const auto now = clock_.Now();
  const auto ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  uint64_t use_ms;
  std::array<uint8_t, 10> rand{};
  {
    std::lock_guard lock(mu_);
    if (ms > last_ms_) {
      last_ms_ = ms;
      SecureRandomBytes(last_rand_.data(), last_rand_.size());
      last_rand_[0] &= 0x7F;  // leave room to increment within one millisecond
    } else {
      // Same millisecond (or a clock that did not move): increment so that
      // ids stay strictly increasing.
      for (int i = 9; i >= 0; --i) {
        if (++last_rand_[static_cast<size_t>(i)] != 0) break;
      }
    }
    use_ms = last_ms_;
    rand = last_rand_;
  }
  // 128 bits: 48 of time, 80 of randomness; 26 base32 digits encode 130 bits,
  // the top two being zero.
  unsigned __int128 v = use_ms & 0xFFFFFFFFFFFFull;
  for (uint8_t b : rand) v = (v << 8) | b;
  char buf[26];
  for (int i = 25; i >= 0; --i) {
    buf[i] = kCrockford[static_cast<int>(v & 0x1F)];
    v >>= 5;
  }
  std::string id(prefix);
  id += '_';
  id.append(buf, 26);
  return id;
}

bool IsValidId(std::string_view id, std::string_view prefix) {
  if (id.size() != prefix.size() + 27) return false;
  if (id.substr(0, prefix.size()) != prefix || id[prefix.size()] != '_') return false;
  for (char c : id.substr(prefix.size() + 1)) {
    if (!IsCrockford(c)) return false;
  }
  return true;
}

}  // namespace caas
