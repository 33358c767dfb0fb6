// Small text checks shared by validators.
#pragma once

#include <cstddef>
#include <string_view>

namespace caas {

// Number of Unicode code points in valid UTF-8 text.
size_t CodePointCount(std::string_view utf8);

// The longest prefix of valid UTF-8 `text` that is at most `max_bytes` long
// and ends on a character boundary (error messages quote input this way).
std::string_view TruncateUtf8(std::string_view text, size_t max_bytes);

// True when the text has a C0/C1 control character or DEL.
bool HasControlCharacters(std::string_view utf8);

// A plausible e-mail address: local@domain.tld, at most 254 bytes, a dot-atom
// local part of at most 64 bytes, a domain of LDH labels with a letter TLD.
bool IsPlausibleEmail(std::string_view email);

}  // namespace caas
