// The JSON form of invoices and credit notes: one form, stored as it is and
// served by the API (so what `mongosh` or `sqlite3` shows is what the API
// shows), with a schema number for later migrations. Money is an object
// {amount_minor, currency}; quantities, prices and rates are decimal strings.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "core/status.h"
#include "invoices/model.h"

namespace caas::invoices {

inline constexpr int kInvoiceSchema = 1;

// `with_internal`: the stored form (the outbox and the bookkeeping of
// billed units); the API leaves them out.
boost::json::object InvoiceToJson(const Invoice& inv, bool with_internal);
// kInternal naming the field when the text is not a stored invoice.
Result<Invoice> InvoiceFromJson(std::string_view text);

boost::json::object LineToJson(const InvoiceLine& l);
// {"amount_minor": …, "currency": "USD"}, as in every stored and API form.
boost::json::object MoneyToJson(const Money& m);

// The API form straight from the stored text (the internal fields dropped),
// without decoding it into an Invoice: the hot read path. kInternal when
// the text is not a stored invoice.
Result<boost::json::object> StoredToApiJson(std::string_view text);

}  // namespace caas::invoices
