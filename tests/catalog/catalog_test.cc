#include "catalog/catalog.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <sstream>

namespace caas::catalog {
namespace {
namespace json = boost::json;

TEST(Catalog, DefaultsAreThePricingModel) {
  const Catalog& c = Catalog::Default();
  EXPECT_EQ(c.currency().code, "USD");
  const PlanVersion* free = c.Latest("free");
  ASSERT_NE(free, nullptr);
  EXPECT_EQ(free->base_fee.amount_minor(), 0);
  EXPECT_EQ(free->metrics.at(Metric::kMessages).limit, Decimal::FromInt(10'000));
  EXPECT_EQ(free->metrics.at(Metric::kMau).limit, Decimal::FromInt(1'000));
  const PlanVersion* pro = c.Latest("pro");
  ASSERT_NE(pro, nullptr);
  EXPECT_EQ(pro->base_fee.amount_minor(), 9'900);
  EXPECT_EQ(pro->trial_days, 14);
  EXPECT_EQ(pro->metrics.at(Metric::kMessages).included, Decimal::FromInt(100'000));
  EXPECT_EQ(pro->metrics.at(Metric::kMessages).unit_price->ToString(), "0.0001");
  EXPECT_EQ(pro->metrics.at(Metric::kMau).unit_price->ToString(), "0.01");
  EXPECT_EQ(pro->metrics.at(Metric::kStorage).unit_price->ToString(), "0.1");
  EXPECT_EQ(pro->metrics.at(Metric::kApiCalls).unit_price->ToString(), "0");
  EXPECT_FALSE(pro->metrics.at(Metric::kMessages).limit);
  const PlanVersion* ent = c.Latest("enterprise");
  ASSERT_NE(ent, nullptr);
  EXPECT_TRUE(ent->custom);
  EXPECT_TRUE(ent->features.at("sso"));
  EXPECT_FALSE(free->features.at("sso"));
  EXPECT_LT(free->tier, pro->tier);
  EXPECT_LT(pro->tier, ent->tier);
  // What metering enforces.
  auto terms = pro->Terms();
  EXPECT_EQ(terms.plan, "pro");
  EXPECT_EQ(terms.plan_version, 1);
  EXPECT_EQ(terms.base_fee.amount_minor(), 9'900);
  EXPECT_EQ(terms.of(Metric::kMessages).included, Decimal::FromInt(100'000));
  EXPECT_FALSE(terms.of(Metric::kMessages).limit);
  EXPECT_TRUE(terms.of(Metric::kMessages).Billable());
  EXPECT_FALSE(terms.of(Metric::kApiCalls).Billable());  // priced at 0: metered, not billed
  EXPECT_EQ(free->Terms().of(Metric::kMau).limit, Decimal::FromInt(1'000));
  EXPECT_FALSE(free->Terms().of(Metric::kMau).Billable());
}

TEST(Catalog, TheShippedFileEqualsTheBuiltIn) {
  auto c = Catalog::Load(std::string(CAAS_REPO) + "/catalog/plans.json");
  ASSERT_TRUE(c.ok()) << c.error().field << ": " << c.error().message;
  EXPECT_EQ(c->All().size(), Catalog::Default().All().size());
}

TEST(Catalog, VersionsLatestAndExplicit) {
  json::value v = json::parse(R"({"plans":[
    {"id":"free","version":1,"name":"Free","tier":0,"base_fee":"0","metrics":{"messages":{},"mau":{},"api_calls":{},"storage":{}},
     "features":{"sso":false,"custom_branding":false,"data_export":false,"priority_support":false,"webhooks":false,"audit_log":false}},
    {"id":"pro","version":2,"name":"Pro","tier":1,"base_fee":"129.00","metrics":{"messages":{},"mau":{},"api_calls":{},"storage":{}},
     "features":{"sso":false,"custom_branding":false,"data_export":false,"priority_support":false,"webhooks":false,"audit_log":false}},
    {"id":"pro","version":1,"name":"Pro","tier":1,"base_fee":"99.00","metrics":{"messages":{},"mau":{},"api_calls":{},"storage":{}},
     "features":{"sso":false,"custom_branding":false,"data_export":false,"priority_support":false,"webhooks":false,"audit_log":false}}]})");
  auto c = Catalog::Parse(json::serialize(v), "t.json");
  ASSERT_TRUE(c.ok()) << c.error().field << " " << c.error().message;
  EXPECT_EQ(c->Latest("pro")->version, 2);
  EXPECT_EQ(c->Latest("pro")->base_fee.amount_minor(), 12'900);
  EXPECT_EQ(c->Get("pro", 1)->base_fee.amount_minor(), 9'900);
  EXPECT_EQ(c->Get("pro", 3), nullptr);
  EXPECT_EQ(c->Latest("gold"), nullptr);
}

struct BadCase {
  const char* path;  // JSON pointer inside the default catalog to change
  json::value value;
  const char* field_part;
  const char* reason_part;
};

TEST(Catalog, PricesInOtherCurrenciesWithoutConversion) {
  const Catalog& c = Catalog::Default();
  const Currency& eur = *Currency::Find("EUR");
  auto pro = c.Latest("pro")->TermsIn(eur);
  ASSERT_TRUE(pro.ok());
  EXPECT_EQ(pro->base_fee, Money(8900, eur));
  EXPECT_EQ(*pro->of(Metric::kMessages).unit_price, Decimal::Parse("0.00009").value());
  EXPECT_EQ(*pro->of(Metric::kMau).included, Decimal::FromInt(10000));  // quantities are the same
  EXPECT_EQ(c.Latest("pro")->TermsIn(Currency::Usd())->base_fee, Money(9900, Currency::Usd()));
  // Free charges nothing: any currency. Pro has no JPY price: refused, named.
  EXPECT_EQ(c.Latest("free")->TermsIn(*Currency::Find("JPY"))->base_fee.currency().code, "JPY");
  auto jpy = c.Latest("pro")->TermsIn(*Currency::Find("JPY"));
  ASSERT_FALSE(jpy.ok());
  EXPECT_EQ(jpy.error().message,
            "Pro has no price in JPY (the tenant's currency); it is priced in USD, EUR");
}

TEST(Catalog, BadFilesNameTheFilePlanAndField) {
  const std::vector<BadCase> cases = {
      {"/plans/1/base_fee", json::value(99), "plans[1] (pro): base_fee", "decimal string"},
      {"/plans/1/base_fee", json::value("-1.00"), "plans[1] (pro): base_fee", "non-negative"},
      {"/plans/1/base_fee", json::value("9.999"), "plans[1] (pro): base_fee", "at most 2"},
      {"/plans/1/metrics/mau/unit_price", json::value(0.01), "metrics.mau.unit_price", "decimal"},
      {"/plans/1/metrics/mau/included", json::value(-5), "metrics.mau.included", "non-negative"},
      {"/plans/1/metrics/bananas", json::object{}, "metrics.bananas", "not a metric"},
      {"/plans/0/metrics/messages/limit", json::value(5), "metrics.messages.limit", "below"},
      {"/plans/1/features/teleport", json::value(true), "features.teleport", "not a known"},
      {"/plans/1/features/sso", json::value("yes"), "features.sso", "true or false"},
      {"/plans/1/trial_days", json::value(1000), "trial_days", "0 to 365"},
      {"/plans/1/id", json::value("Pro Plan"), "plans[1]", "a-z"},
      {"/plans/1/version", json::value(0), "version", "from 1"},
      {"/plans/2/id", json::value("pro"), "version", "twice"},
      {"/plans/1/colour", json::value("red"), "colour", "not a known plan field"},
      {"/currency", json::value("XXX"), "currency", "ISO 4217"},
      {"/plans/0/id", json::value("basic"), "plans", "free"},
      {"/plans/1/prices/XXX", json::object{{"base_fee", "1.00"}}, "prices.XXX", "ISO 4217"},
      {"/plans/1/prices/USD", json::object{{"base_fee", "1.00"}}, "prices.USD", "catalog's"},
      {"/plans/1/prices/EUR/base_fee", json::value("89.001"), "prices.EUR.base_fee", "at most 2"},
      {"/plans/1/prices/EUR/unit_prices",
       json::object{{"messages", "0.00009"}, {"api_calls", "0"}, {"storage", "0.09"}},
       "prices.EUR.unit_prices.mau", "required"},
      {"/plans/0/prices",
       json::object{{"EUR", json::object{{"base_fee", "0.00"},
                                         {"unit_prices", json::object{{"mau", "1"}}}}}},
       "prices.EUR.unit_prices.mau", "no unit price"},
  };
  for (const auto& c : cases) {
    std::ifstream in(std::string(CAAS_REPO) + "/catalog/plans.json");
    std::stringstream ss;
    ss << in.rdbuf();
    json::value doc = json::parse(ss.str());
    // Set the value at the pointer (creating the last member if needed).
    std::string ptr = c.path;
    const auto slash = ptr.rfind('/');
    json::value& parent = ptr.substr(0, slash).empty() ? doc : doc.at_pointer(ptr.substr(0, slash));
    const std::string last = ptr.substr(slash + 1);
    if (parent.is_object()) {
      parent.as_object()[last] = c.value;
    } else {
      parent.as_array().at(std::stoul(last)) = c.value;
    }
    auto r = Catalog::Parse(json::serialize(doc), "my-plans.json");
    ASSERT_FALSE(r.ok()) << c.path;
    EXPECT_NE(r.error().field.find("my-plans.json"), std::string::npos) << r.error().field;
    EXPECT_NE(r.error().field.find(c.field_part), std::string::npos)
        << c.path << " -> " << r.error().field << ": " << r.error().message;
    EXPECT_NE(r.error().message.find(c.reason_part), std::string::npos)
        << c.path << " -> " << r.error().field << ": " << r.error().message;
  }
  EXPECT_FALSE(Catalog::Parse("{", "x.json").ok());
  EXPECT_FALSE(Catalog::Load("/nonexistent/plans.json").ok());
}

}  // namespace
}  // namespace caas::catalog
