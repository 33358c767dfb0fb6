#include "core/hash.h"

#include <openssl/evp.h>

#include "core/status.h"

namespace caas {

std::string Sha256Hex(std::string_view data) {
  // Fetched once: OpenSSL 3 looks the algorithm up again on every implicit
  // use (EVP_sha256() in EVP_Digest), a lock-taking cost on every request.
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (kSha256 == nullptr || EVP_Digest(data.data(), data.size(), md, &len, kSha256, nullptr) != 1) {
    AbortWithMessage("Sha256Hex", "EVP_Digest failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xF]);
  }
  return out;
}

}  // namespace caas
