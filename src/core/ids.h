// Prefixed, time-sortable ids: "tnt_01JD3M5Q8X6V9K2C4T7R0B1N5F".
//
// The 26 characters after the prefix are a ULID: 48 bits of milliseconds
// since the epoch then 80 random bits, in Crockford base32. Ids made by one
// generator sort in creation order, also within one millisecond (the random
// part is incremented), so cursor pagination by id is creation order.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "core/clock.h"

namespace caas {

// Fills `out` with `n` bytes from the kernel's CSPRNG (getrandom). Aborts if
// the kernel cannot supply them: there is no safe fallback.
void SecureRandomBytes(void* out, size_t n);

// Base64url without padding of `n` random bytes: for secrets such as API keys.
std::string RandomToken(size_t n_bytes);

class IdGenerator {
 public:
  explicit IdGenerator(const Clock& clock) : clock_(clock) {}
  IdGenerator(const IdGenerator&) = delete;
  IdGenerator& operator=(const IdGenerator&) = delete;

  // prefix without the underscore, e.g. "tnt". Thread-safe.
  std::string Next(std::string_view prefix);

 private:
  const Clock& clock_;
  std::mutex mu_;                        // guards last_ms_, last_rand_
  uint64_t last_ms_ = 0;                 // guarded by mu_
  std::array<uint8_t, 10> last_rand_{};  // guarded by mu_
};

// True when `id` is `prefix` + "_" + 26 Crockford base32 characters.
bool IsValidId(std::string_view id, std::string_view prefix);

}  // namespace caas
