// The Mailer port: one e-mail with attachments (an invoice and its PDF).
//
// Adapters:
// - EmlMailer (the embedded default): writes each message as an .eml file
//   under DATA_DIR/outbox, atomically;
// - SmtpMailer: libcurl over SMTP, STARTTLS when the server offers it,
//   AUTH when a user is configured; the message as multipart/mixed MIME.
//
// Outcomes: Ok; kUnavailable for what a retry may mend (connection refused,
// a 4xx answer, a timeout); kInvalidArgument for a permanent refusal (a 5xx
// answer: no such mailbox), which is not retried.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace caas::mail {

struct Attachment {
  std::string filename;
  std::string content_type;
  std::string bytes;
};

struct Mail {
  std::string message_id;  // without <>; the same on every retry (receivers dedupe on it)
  std::string from;        // an address
  std::string from_name;
  std::string to;
  std::string subject;  // UTF-8
  std::string text;     // UTF-8 plain text body
  std::string date;     // RFC 5322 date
  std::vector<Attachment> attachments;
};

// The message as MIME text (CRLF line ends, base64 attachments, UTF-8
// headers encoded per RFC 2047). Deterministic: the boundary comes from the
// message id.
std::string RenderMime(const Mail& m);
// "Wed, 01 Apr 2026 01:00:00 +0000"
std::string Rfc5322Date(int64_t unix_seconds);

class Mailer {
 public:
  virtual ~Mailer() = default;
  virtual Status Send(const Mail& m) = 0;
  virtual std::string Describe() const = 0;
};

std::unique_ptr<Mailer> MakeEmlMailer(std::string dir);

struct SmtpOptions {
  std::string url;  // smtp://host:port or smtps://host:port
  std::string user;
  std::string password;
  long timeout_seconds = 30;
  std::string ca_file;  // certificates to trust for STARTTLS/SMTPS (empty: the system's)
};
std::unique_ptr<Mailer> MakeSmtpMailer(SmtpOptions options);

}  // namespace caas::mail
