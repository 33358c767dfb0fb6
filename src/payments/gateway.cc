#include "payments/gateway.h"

namespace caas::payments {
namespace {

class ManualGateway final : public PaymentGateway {
 public:
  std::string_view Name() const override { return "manual"; }
  Result<std::string> CreateCustomer(std::string_view, std::string_view,
                                     std::string_view) override {
    return Refused();
  }
  Result<std::string> CreateSetupIntent(std::string_view, std::string_view, int) override {
    return Refused();
  }
  Result<std::vector<Card>> ListCards(std::string_view) override { return Refused(); }
  Result<Card> GetCard(std::string_view) override { return Refused(); }
  Status DetachCard(std::string_view) override { return Refused(); }
  ChargeOutcome Charge(const OffSessionCharge&) override {
    ChargeOutcome o;
    o.kind = ChargeOutcome::Kind::kFailed;
    o.message = Refused().message;
    return o;
  }
  ChargeOutcome Retrieve(std::string_view) override { return Charge({}); }

 private:
  static Error Refused() {
    return Error::Make(ErrorCode::kFailedPrecondition,
                       "card payments are not configured (no Stripe key): tenants pay by bank "
                       "transfer, recorded with POST /v1/invoices/{id}/payments");
  }
};

}  // namespace

std::string_view ChargeKindName(ChargeOutcome::Kind k) {
  switch (k) {
    case ChargeOutcome::Kind::kSucceeded:
      return "succeeded";
    case ChargeOutcome::Kind::kProcessing:
      return "processing";
    case ChargeOutcome::Kind::kDeclined:
      return "declined";
    case ChargeOutcome::Kind::kAuthenticationRequired:
      return "authentication_required";
    case ChargeOutcome::Kind::kFailed:
      return "failed";
    case ChargeOutcome::Kind::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::unique_ptr<PaymentGateway> MakeManualGateway() { return std::make_unique<ManualGateway>(); }

}  // namespace caas::payments
