#include "app/invoices_cli.h"

#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>

namespace caas::app {
namespace json = boost::json;
namespace {

// 12777 USD -> "USD 127.77" (the exponent from the currency's digits).
std::string MoneyText(const json::value& m) {
  const auto& o = m.as_object();
  const std::string cur = JsonText(o.at("currency"));
  const int64_t minor = o.at("amount_minor").as_int64();
  const int exp = cur == "JPY" || cur == "KRW" ? 0 : (cur == "BHD" || cur == "KWD" ? 3 : 2);
  std::string digits = std::to_string(minor < 0 ? -minor : minor);
  if (exp > 0) {
    while (static_cast<int>(digits.size()) <= exp) digits.insert(digits.begin(), '0');
    digits.insert(digits.end() - exp, '.');
  }
  return cur + " " + (minor < 0 ? "-" : "") + digits;
}

void PrintInvoice(const json::object& o) {
  const std::string number = o.at("number").is_null() ? "(draft)" : JsonText(o.at("number"));
  std::cout << number << "  " << JsonText(o.at("id")) << "  " << JsonText(o.at("status")) << "  "
            << JsonText(o.at("kind")) << "  tenant " << JsonText(o.at("tenant")) << "\n";
  if (!o.at("period").is_null()) {
    std::cout << "  period " << JsonText(o.at("period").at("start")) << " to "
              << JsonText(o.at("period").at("end")) << "\n";
  }
  for (const auto& lv : o.at("lines").as_array()) {
    const auto& l = lv.as_object();
    std::printf("  %-60s %14s x %-10s %16s\n", JsonText(l.at("description")).c_str(),
                JsonText(l.at("quantity")).c_str(), JsonText(l.at("unit_price")).c_str(),
                MoneyText(l.at("amount")).c_str());
  }
  std::printf("  %-88s %16s\n", "subtotal", MoneyText(o.at("subtotal")).c_str());
  for (const auto& tv : o.at("taxes").as_array()) {
    std::printf("  %-88s %16s\n", JsonText(tv.at("description")).c_str(),
                MoneyText(tv.at("amount")).c_str());
  }
  std::printf("  %-88s %16s\n", "total", MoneyText(o.at("total")).c_str());
  std::printf("  %-88s %16s\n", "amount due", MoneyText(o.at("amount_due")).c_str());
  if (const auto* paid = o.if_contains("amount_paid");
      paid && paid->at("amount_minor").as_int64() != 0) {
    for (const auto& pv : o.at("payments").as_array()) {
      const std::string line = "paid " + JsonText(pv.at("at")).substr(0, 10) + " by " +
                               JsonText(pv.at("method")) + " " + JsonText(pv.at("reference"));
      std::printf("  %-88s %16s\n", line.c_str(), MoneyText(pv.at("amount")).c_str());
    }
    std::printf("  %-88s %16s\n", "amount remaining", MoneyText(o.at("amount_remaining")).c_str());
  }
  if (!JsonText(o.at("tax_note")).empty()) std::cout << "  " << JsonText(o.at("tax_note")) << "\n";
}

}  // namespace

int RunInvoicesList(const ClientTarget& c, const std::string& tenant, const std::string& status,
                    int limit, bool as_json) {
  std::string after;
  int printed = 0;
  while (printed < limit) {
    std::string path = "/v1/invoices?limit=" + std::to_string(std::min(100, limit - printed));
    if (!tenant.empty()) path += "&tenant=" + tenant;
    if (!status.empty()) path += "&status=" + status;
    if (!after.empty()) path += "&starting_after=" + after;
    int code = 0;
    auto r = CallJson(c, "GET", path, "", &code);
    if (!r) return code;
    for (const auto& v : r->at("data").as_array()) {
      const auto& o = v.as_object();
      if (as_json) {
        std::cout << json::serialize(o) << "\n";
      } else {
        const std::string number = o.at("number").is_null() ? "(draft)" : JsonText(o.at("number"));
        std::cout << number << "  " << JsonText(o.at("id")) << "  " << JsonText(o.at("tenant"))
                  << "  " << JsonText(o.at("status")) << "  " << JsonText(o.at("kind")) << "  "
                  << MoneyText(o.at("total")) << "\n";
      }
      ++printed;
    }
    if (!r->at("has_more").as_bool() || r->at("data").as_array().empty()) break;
    after = JsonText(r->at("next_starting_after"));
  }
  if (printed == 0 && !as_json) std::cout << "no invoices\n";
  return 0;
}

int RunInvoicesShow(const ClientTarget& c, const std::string& id, bool as_json) {
  int code = 0;
  auto r = CallJson(c, "GET", "/v1/invoices/" + id, "", &code);
  if (!r) return code;
  if (as_json) {
    std::cout << json::serialize(*r) << "\n";
  } else {
    PrintInvoice(*r);
  }
  return 0;
}

int RunInvoicesPdf(const ClientTarget& c, const std::string& id, const std::string& out) {
  auto client = ApiClient::Create(c.url, c.key);
  if (!client) {
    std::cerr << "caas-billing: " << client.error().message << "\n";
    return 2;
  }
  ClientResponse r;
  try {
    r = (*client)->Send("GET", "/v1/invoices/" + id + "/pdf", "", "");
  } catch (const std::exception& e) {
    std::cerr << "caas-billing: " << e.what() << "\n";
    return 2;
  }
  if (r.status != 200) {
    std::cerr << "caas-billing: " << r.status << " " << r.body << "\n";
    return r.status == 409 ? 1 : 2;
  }
  if (out == "-") {
    std::cout.write(r.body.data(), static_cast<std::streamsize>(r.body.size()));
    return 0;
  }
  std::ofstream f(out, std::ios::binary);
  f.write(r.body.data(), static_cast<std::streamsize>(r.body.size()));
  if (!f) {
    std::cerr << "caas-billing: cannot write " << out << "\n";
    return 2;
  }
  std::cout << "wrote " << out << " (" << r.body.size() << " bytes)\n";
  return 0;
}

int RunInvoicesClose(const ClientTarget& c, const std::string& tenant, const std::string& at) {
  json::object body;
  if (!tenant.empty()) body["tenant"] = tenant;
  if (!at.empty()) body["at"] = at;
  int code = 0;
  auto r = CallJson(c, "POST", "/v1/invoices/close", json::serialize(body), &code);
  if (!r) return code;
  const auto& data = r->at("data").as_array();
  for (const auto& v : data) PrintInvoice(v.as_object());
  if (data.empty()) std::cout << "nothing to close\n";
  return 0;
}

int RunInvoicesPay(const ClientTarget& c, const std::string& id, const std::string& amount,
                   const std::string& method, const std::string& reference) {
  json::object body{{"amount", amount}, {"method", method}};
  if (!reference.empty()) body["reference"] = reference;
  int code = 0;
  auto r = CallJson(c, "POST", "/v1/invoices/" + id + "/payments", json::serialize(body), &code);
  if (!r) return code;
  PrintInvoice(*r);
  return 0;
}

}  // namespace caas::app
