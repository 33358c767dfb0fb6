// SHA-256 (OpenSSL's EVP), for API key hashes and idempotency record ids.
#pragma once

#include <string>
#include <string_view>

namespace caas {

// The SHA-256 of `data`, 64 lower-case hex digits.
std::string Sha256Hex(std::string_view data);

}  // namespace caas
