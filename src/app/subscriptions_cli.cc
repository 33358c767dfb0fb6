#include "app/subscriptions_cli.h"

#include <boost/json.hpp>
#include <cstdio>
#include <iostream>

#include "app/client.h"

namespace caas::app {
namespace json = boost::json;
namespace {

// Sends one request; prints problems; returns the parsed answer or nullopt.
std::optional<json::object> Call(const ClientTarget& t, const std::string& method,
                                 const std::string& path, const std::string& body, int* code) {
  auto client = ApiClient::Create(t.url, t.key);
  if (!client) {
    std::cerr << "caas-billing: " << client.error().field << " " << client.error().message << "\n";
    *code = 2;
    return std::nullopt;
  }
  ClientResponse r;
  try {
    r = (*client)->Send(method, path, body.empty() ? "" : "application/json", body);
  } catch (const std::exception& e) {
    std::cerr << "caas-billing: " << e.what() << "\n";
    *code = 2;
    return std::nullopt;
  }
  if (r.status != 200) {
    std::cerr << "caas-billing: the server answered " << r.status << ": " << r.body << "\n";
    *code = r.status == 409 ? 1 : 2;
    return std::nullopt;
  }
  *code = 0;
  return json::parse(r.body).as_object();
}

std::string Str(const json::value& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return std::string(v.as_string());
  return json::serialize(v);
}

void PrintState(const json::object& t) {
  const auto& s = t.at("subscription").as_object();
  const auto& p = s.at("current_period").as_object();
  std::cout << "tenant " << Str(t.at("tenant")) << "  subscription " << Str(s.at("id")) << "\n"
            << "  plan " << Str(s.at("plan")) << " v" << Str(s.at("plan_version")) << "  status "
            << Str(s.at("status")) << "  anchor " << Str(s.at("billing_anchor")) << "\n"
            << "  period " << Str(p.at("start")) << " .. " << Str(p.at("end")) << "\n";
  if (!s.at("trial_end").is_null()) std::cout << "  trial ends " << Str(s.at("trial_end")) << "\n";
  if (s.at("cancel_at_period_end").as_bool()) std::cout << "  cancels at period end\n";
  if (s.at("scheduled_change").is_object()) {
    std::cout << "  changes to " << Str(s.at("scheduled_change").as_object().at("plan")) << " at "
              << Str(s.at("scheduled_change").as_object().at("at")) << "\n";
  }
  const auto& lines = t.at("pending_lines").as_array();
  if (!lines.empty()) std::cout << "  pending lines:\n";
  for (const auto& l : lines) {
    const auto& a = l.as_object().at("amount").as_object();
    std::printf("    %12.2f %s  %s\n",
                static_cast<double>(a.at("amount_minor").to_number<int64_t>()) / 100.0,
                Str(a.at("currency")).c_str(), Str(l.as_object().at("description")).c_str());
  }
}

}  // namespace

int RunSubscriptionShow(const ClientTarget& c, const std::string& tenant, bool as_json) {
  int code = 0;
  auto r = Call(c, "GET", "/v1/tenants/" + tenant + "/subscription", "", &code);
  if (!r) return code;
  if (as_json) {
    std::cout << json::serialize(*r) << "\n";
  } else {
    PrintState(*r);
  }
  return 0;
}

int RunSubscriptionChange(const ClientTarget& c, const std::string& tenant, const std::string& plan,
                          const std::string& at, bool trial, bool preview) {
  json::object body{{"plan", plan}};
  if (!at.empty()) body["at"] = at;
  if (trial) body["trial"] = true;
  int code = 0;
  auto r = Call(c, "POST",
                "/v1/tenants/" + tenant + (preview ? "/subscription/preview" : "/subscription"),
                json::serialize(body), &code);
  if (!r) return code;
  std::cout << (preview ? "would be: " : "") << Str(r->at("effect")) << "  total "
            << Str(r->at("total_minor")) << " minor units " << Str(r->at("currency")) << "\n";
  for (const auto& l : r->at("lines").as_array()) {
    std::cout << "  " << Str(l.as_object().at("amount").as_object().at("amount_minor")) << "  "
              << Str(l.as_object().at("description")) << "\n";
  }
  if (!preview) PrintState(r->at("subscription").as_object());
  return 0;
}

int RunSubscriptionCancel(const ClientTarget& c, const std::string& tenant, bool now) {
  int code = 0;
  auto r = Call(c, "POST", "/v1/tenants/" + tenant + "/subscription/cancel",
                json::serialize(json::object{{"at", now ? "now" : "period_end"}}), &code);
  if (!r) return code;
  std::cout << Str(r->at("effect")) << "\n";
  PrintState(r->at("subscription").as_object());
  return 0;
}

int RunPlansMigrate(const ClientTarget& c, const std::string& plan, int to_version,
                    std::optional<int> from_version) {
  json::object body{{"to_version", to_version}};
  if (from_version) body["from_version"] = *from_version;
  int code = 0;
  auto r = Call(c, "POST", "/v1/plans/" + plan + "/migrate", json::serialize(body), &code);
  if (!r) return code;
  std::cout << "migrated " << Str(r->at("migrated")) << " subscriptions to " << plan << " version "
            << to_version << "\n";
  return 0;
}

}  // namespace caas::app
