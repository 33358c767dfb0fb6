#include "app/subscriptions_cli.h"

#include <boost/json.hpp>
#include <cstdio>
#include <iostream>

#include "app/client.h"

namespace caas::app {
namespace json = boost::json;
namespace {

void PrintState(const json::object& t) {
  const auto& s = t.at("subscription").as_object();
  const auto& p = s.at("current_period").as_object();
  std::cout << "tenant " << JsonText(t.at("tenant")) << "  subscription " << JsonText(s.at("id"))
            << "\n"
            << "  plan " << JsonText(s.at("plan")) << " v" << JsonText(s.at("plan_version"))
            << "  status " << JsonText(s.at("status")) << "  anchor "
            << JsonText(s.at("billing_anchor")) << "\n"
            << "  period " << JsonText(p.at("start")) << " .. " << JsonText(p.at("end")) << "\n";
  if (!s.at("trial_end").is_null())
    std::cout << "  trial ends " << JsonText(s.at("trial_end")) << "\n";
  if (s.at("cancel_at_period_end").as_bool()) std::cout << "  cancels at period end\n";
  if (s.at("scheduled_change").is_object()) {
    std::cout << "  changes to " << JsonText(s.at("scheduled_change").as_object().at("plan"))
              << " at " << JsonText(s.at("scheduled_change").as_object().at("at")) << "\n";
  }
  const auto& lines = t.at("pending_lines").as_array();
  if (!lines.empty()) std::cout << "  pending lines:\n";
  for (const auto& l : lines) {
    const auto& a = l.as_object().at("amount").as_object();
    std::printf("    %12.2f %s  %s\n",
                static_cast<double>(a.at("amount_minor").to_number<int64_t>()) / 100.0,
                JsonText(a.at("currency")).c_str(),
                JsonText(l.as_object().at("description")).c_str());
  }
}

}  // namespace

int RunSubscriptionShow(const ClientTarget& c, const std::string& tenant, bool as_json) {
  int code = 0;
  auto r = CallJson(c, "GET", "/v1/tenants/" + tenant + "/subscription", "", &code);
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
  auto r = CallJson(c, "POST",
                    "/v1/tenants/" + tenant + (preview ? "/subscription/preview" : "/subscription"),
                    json::serialize(body), &code);
  if (!r) return code;
  std::cout << (preview ? "would be: " : "") << JsonText(r->at("effect")) << "  total "
            << JsonText(r->at("total_minor")) << " minor units " << JsonText(r->at("currency"))
            << "\n";
  for (const auto& l : r->at("lines").as_array()) {
    std::cout << "  " << JsonText(l.as_object().at("amount").as_object().at("amount_minor")) << "  "
              << JsonText(l.as_object().at("description")) << "\n";
  }
  if (!preview) PrintState(r->at("subscription").as_object());
  return 0;
}

int RunSubscriptionCancel(const ClientTarget& c, const std::string& tenant, bool now) {
  int code = 0;
  auto r = CallJson(c, "POST", "/v1/tenants/" + tenant + "/subscription/cancel",
                    json::serialize(json::object{{"at", now ? "now" : "period_end"}}), &code);
  if (!r) return code;
  std::cout << JsonText(r->at("effect")) << "\n";
  PrintState(r->at("subscription").as_object());
  return 0;
}

int RunPlansMigrate(const ClientTarget& c, const std::string& plan, int to_version,
                    std::optional<int> from_version) {
  json::object body{{"to_version", to_version}};
  if (from_version) body["from_version"] = *from_version;
  int code = 0;
  auto r = CallJson(c, "POST", "/v1/plans/" + plan + "/migrate", json::serialize(body), &code);
  if (!r) return code;
  std::cout << "migrated " << JsonText(r->at("migrated")) << " subscriptions to " << plan
            << " version " << to_version << "\n";
  return 0;
}

}  // namespace caas::app
