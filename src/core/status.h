// Error values for expected outcomes. Exceptions are reserved for broken
// infrastructure (see storage::StorageError); everything a caller can
// reasonably expect to happen (not found, already exists, invalid input,
// version conflict) comes back as an Error inside a Result or Status.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace caas {

enum class ErrorCode {
  kInvalidArgument,     // the caller's input is wrong; `field` names it
  kNotFound,            // no such resource (or not visible to the caller)
  kAlreadyExists,       // an id or unique key is taken
  kConflict,            // a versioned write lost a race, or a state forbids it
  kFailedPrecondition,  // the system is not in a state that allows it
  kUnauthenticated,     // no or bad credentials
  kPermissionDenied,    // credentials valid, operation not allowed
  kOutOfRange,          // arithmetic overflow or value outside its domain
  kUnavailable,         // a dependency is down; retrying may help
  kResourceExhausted,   // out of disk or another resource; retrying later may help
  kTooLarge,            // the input as a whole exceeds a bound
  kInternal,            // a bug or corrupted data
};

std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code;
  std::string message;
  std::string field;  // dotted path of the offending input field, if any

  static Error Invalid(std::string field, std::string message) {
    return Error{ErrorCode::kInvalidArgument, std::move(message), std::move(field)};
  }
  static Error NotFound(std::string message) {
    return Error{ErrorCode::kNotFound, std::move(message), {}};
  }
  static Error Make(ErrorCode code, std::string message) {
    return Error{code, std::move(message), {}};
  }
};

// A value or an Error. Accessing the wrong alternative is a programmer error
// and aborts (assertions stay on in every build).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return Check(), std::get<T>(v_); }
  const T& value() const& { return Check(), std::get<T>(v_); }
  T&& value() && { return Check(), std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    if (ok()) Abort("Result::error() on a value");
    return std::get<Error>(v_);
  }

 private:
  void Check() const {
    if (!ok()) Abort(std::get<Error>(v_).message.c_str());
  }
  [[noreturn]] static void Abort(const char* what);
  std::variant<T, Error> v_;
};

[[noreturn]] void AbortWithMessage(const char* context, const char* what);

template <class T>
void Result<T>::Abort(const char* what) {
  AbortWithMessage("Result accessed wrongly", what);
}

// Success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  static Status Ok() { return Status(); }

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const {
    if (!error_) AbortWithMessage("Status::error() on success", "");
    return *error_;
  }

 private:
  std::optional<Error> error_;
};

}  // namespace caas
