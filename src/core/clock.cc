#include "core/clock.h"

namespace caas {

Instant SystemClock::Now() const {
  return std::chrono::time_point_cast<Micros>(std::chrono::system_clock::now());
}

Instant ManualClock::Now() const {
  std::lock_guard lock(mu_);
  return now_;
}

Status ManualClock::Set(Instant t) {
  std::lock_guard lock(mu_);
  if (t < now_) return Error::Make(ErrorCode::kFailedPrecondition, "a clock never goes backwards");
  now_ = t;
  return Status::Ok();
}

void ManualClock::Advance(Micros d) {
  std::lock_guard lock(mu_);
  if (d.count() > 0) now_ += d;
}

}  // namespace caas
