// Time source. Domain code asks a Clock, never std::chrono::system_clock, so
// that tests and staging can move time (trials, month ends, dunning).
#pragma once

#include <mutex>

#include "core/time.h"

namespace caas {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Instant Now() const = 0;
  virtual bool IsManual() const = 0;
};

class SystemClock final : public Clock {
 public:
  Instant Now() const override;
  bool IsManual() const override { return false; }
};

// A clock that moves only when told. Thread-safe. It never goes backwards:
// Set() to an earlier instant fails.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Instant start) : now_(start) {}
  Instant Now() const override;
  bool IsManual() const override { return true; }
  Status Set(Instant t);
  void Advance(Micros d);

 private:
  mutable std::mutex mu_;  // guards now_
  Instant now_;            // guarded by mu_
};

}  // namespace caas
