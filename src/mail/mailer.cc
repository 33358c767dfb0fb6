#include "mail/mailer.h"

#include <curl/curl.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>

#include "core/durable_file.h"

namespace caas::mail {
namespace {

std::string Base64(std::string_view in, bool wrap) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4 + in.size() / 38);
  size_t col = 0;
  for (size_t i = 0; i < in.size(); i += 3) {
    const uint32_t b0 = static_cast<unsigned char>(in[i]);
    const uint32_t b1 = i + 1 < in.size() ? static_cast<unsigned char>(in[i + 1]) : 0;
    const uint32_t b2 = i + 2 < in.size() ? static_cast<unsigned char>(in[i + 2]) : 0;
    const uint32_t v = (b0 << 16) | (b1 << 8) | b2;
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? k[v & 63] : '=';
    col += 4;
    if (wrap && col >= 76) {
      out += "\r\n";
      col = 0;
    }
  }
  if (wrap && col > 0) out += "\r\n";
  return out;
}

bool Ascii(std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x80 || c < 0x20) return false;
  }
  return true;
}

// An RFC 2047 encoded word when the text is not plain ASCII.
std::string Header(std::string_view s) {
  if (Ascii(s)) return std::string(s);
  return "=?UTF-8?B?" + Base64(s, false) + "?=";
}

// Header values never carry a line break (no header injection).
std::string OneLine(std::string_view s) {
  std::string out;
  for (char c : s) out += (c == '\r' || c == '\n') ? ' ' : c;
  return out;
}

}  // namespace

std::string Rfc5322Date(int64_t unix_seconds) {
  const time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

std::string RenderMime(const Mail& m) {
  const std::string boundary = "=_caas_" + Base64(m.message_id, false).substr(0, 24);
  std::string out;
  out += "From: " + (m.from_name.empty() ? "" : Header(OneLine(m.from_name)) + " ") + "<" +
         OneLine(m.from) + ">\r\n";
  out += "To: <" + OneLine(m.to) + ">\r\n";
  out += "Subject: " + Header(OneLine(m.subject)) + "\r\n";
  out += "Date: " + OneLine(m.date) + "\r\n";
  out += "Message-ID: <" + OneLine(m.message_id) + ">\r\n";
  out += "MIME-Version: 1.0\r\n";
  out += "Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n";
  out += "This is a multi-part message in MIME format.\r\n";
  out += "--" + boundary + "\r\n";
  out += "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n";
  out += Base64(m.text, true);
  for (const auto& a : m.attachments) {
    out += "--" + boundary + "\r\n";
    out +=
        "Content-Type: " + OneLine(a.content_type) + "; name=\"" + OneLine(a.filename) + "\"\r\n";
    out += "Content-Transfer-Encoding: base64\r\n";
    out += "Content-Disposition: attachment; filename=\"" + OneLine(a.filename) + "\"\r\n\r\n";
    out += Base64(a.bytes, true);
  }
  out += "--" + boundary + "--\r\n";
  return out;
}

namespace {

class EmlMailer final : public Mailer {
 public:
  explicit EmlMailer(std::string dir) : dir_(std::move(dir)) {}
  // One .eml file per message, written atomically and durably (its flushes
  // shared with concurrent sends).
  Status Send(const Mail& m) override {
    std::string name;
    for (char c : m.message_id) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return WriteFileDurably(flush_, dir_ + "/" + name + ".eml", RenderMime(m));
  }
  std::string Describe() const override { return "eml:" + dir_; }

 private:
  std::string dir_;
  FlushGroup flush_;
};

struct Upload {
  const std::string* text;
  size_t at = 0;
};
size_t ReadUpload(char* ptr, size_t size, size_t nmemb, void* userp) {
  auto* u = static_cast<Upload*>(userp);
  const size_t n = std::min(size * nmemb, u->text->size() - u->at);
  std::memcpy(ptr, u->text->data() + u->at, n);
  u->at += n;
  return n;
}

class SmtpMailer final : public Mailer {
 public:
  explicit SmtpMailer(SmtpOptions o) : o_(std::move(o)) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  }
  Status Send(const Mail& m) override {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) return Error::Make(ErrorCode::kUnavailable, "libcurl: no handle");
    const std::string text = RenderMime(m);
    Upload up{&text};
    const std::string from = "<" + m.from + ">", to = "<" + m.to + ">";
    curl_slist* rcpt = curl_slist_append(nullptr, to.c_str());
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, o_.url.c_str());
    curl_easy_setopt(c, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_TRY));  // STARTTLS if offered
    if (!o_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, o_.ca_file.c_str());
    if (!o_.user.empty()) {
      curl_easy_setopt(c, CURLOPT_USERNAME, o_.user.c_str());
      curl_easy_setopt(c, CURLOPT_PASSWORD, o_.password.c_str());
    }
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from.c_str());
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, ReadUpload);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, o_.timeout_seconds);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    const CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(rcpt);
    if (rc == CURLE_OK) return Status::Ok();
    const std::string why = std::string("SMTP ") + curl_easy_strerror(rc) +
                            (code ? " (server answered " + std::to_string(code) + ")" : "");
    // 5xx: the server refuses for good (no such mailbox); anything else may pass later.
    if (code >= 500 && code < 600) return Error::Invalid("email", why);
    return Error::Make(ErrorCode::kUnavailable, why);
  }
  std::string Describe() const override {
    // Never the password.
    return o_.url + (o_.user.empty() ? "" : " as " + o_.user);
  }

 private:
  SmtpOptions o_;
};

}  // namespace

std::unique_ptr<Mailer> MakeEmlMailer(std::string dir) {
  return std::make_unique<EmlMailer>(std::move(dir));
}
std::unique_ptr<Mailer> MakeSmtpMailer(SmtpOptions options) {
  return std::make_unique<SmtpMailer>(std::move(options));
}

}  // namespace caas::mail
