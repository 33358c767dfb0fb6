// `caas-billing invoices list|show|close`: the invoices of a running server
// (GET /v1/invoices…, POST /v1/invoices/close).
#pragma once

#include <string>

#include "app/client.h"

namespace caas::app {

int RunInvoicesList(const ClientTarget& c, const std::string& tenant, const std::string& status,
                    int limit, bool json);
int RunInvoicesShow(const ClientTarget& c, const std::string& id, bool json);
// Writes the PDF to `out` ("-": stdout).
int RunInvoicesPdf(const ClientTarget& c, const std::string& id, const std::string& out);
int RunInvoicesClose(const ClientTarget& c, const std::string& tenant, const std::string& at);
// POST /v1/invoices/{id}/payments; prints the invoice with what remains.
int RunInvoicesPay(const ClientTarget& c, const std::string& id, const std::string& amount,
                   const std::string& method, const std::string& reference);

}  // namespace caas::app
