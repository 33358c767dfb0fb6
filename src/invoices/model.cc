#include "invoices/model.h"

#include <array>
#include <utility>

namespace caas::invoices {
namespace {

template <class E, size_t N>
std::optional<E> Find(const std::array<std::pair<E, std::string_view>, N>& names,
                      std::string_view s) {
  for (const auto& [e, n] : names) {
    if (n == s) return e;
  }
  return std::nullopt;
}
template <class E, size_t N>
std::string_view Name(const std::array<std::pair<E, std::string_view>, N>& names, E e) {
  for (const auto& [v, n] : names) {
    if (v == e) return n;
  }
  return "unknown";
}

constexpr std::array<std::pair<InvoiceStatus, std::string_view>, 5> kStatus = {{
    {InvoiceStatus::kDraft, "draft"},
    {InvoiceStatus::kFinalized, "finalized"},
    {InvoiceStatus::kPaid, "paid"},
    {InvoiceStatus::kVoid, "void"},
    {InvoiceStatus::kUncollectible, "uncollectible"},
}};
constexpr std::array<std::pair<LineType, std::string_view>, 6> kLineType = {{
    {LineType::kBaseFee, "base_fee"},
    {LineType::kProrationCredit, "proration_credit"},
    {LineType::kProrationCharge, "proration_charge"},
    {LineType::kUsage, "usage"},
    {LineType::kLateUsage, "late_usage"},
    {LineType::kCredit, "credit"},
}};
constexpr std::array<std::pair<TaxMode, std::string_view>, 3> kTaxMode = {{
    {TaxMode::kStandard, "standard"},
    {TaxMode::kExempt, "exempt"},
    {TaxMode::kReverseCharge, "reverse_charge"},
}};

}  // namespace

std::string_view StatusName(InvoiceStatus s) { return Name(kStatus, s); }
std::optional<InvoiceStatus> ParseStatus(std::string_view s) { return Find(kStatus, s); }
std::string_view LineTypeName(LineType t) { return Name(kLineType, t); }
std::optional<LineType> ParseLineType(std::string_view s) { return Find(kLineType, s); }
std::string_view TaxModeName(TaxMode m) { return Name(kTaxMode, m); }
std::optional<TaxMode> ParseTaxMode(std::string_view s) { return Find(kTaxMode, s); }

}  // namespace caas::invoices
