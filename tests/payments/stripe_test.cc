// The Stripe client's pure parts (form encoding, retry policy, webhook
// signatures) and the client against the stateful fake Stripe in
// tests/fake_stripe/, which this test starts itself: a fake that does not
// start is a failure, never a skip.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "payments/stripe_client.h"
#include "payments/webhook_signature.h"

namespace caas::payments {
namespace {

using namespace std::chrono_literals;

TEST(StripeForm, EncodesNestedNamesAndEscapesValues) {
  EXPECT_EQ(FormEncode({{"amount", "4900"},
                        {"metadata[invoice_id]", "in_1"},
                        {"expand[0]", "latest_charge"},
                        {"description", "a b&c=d/é"}}),
            "amount=4900&metadata[invoice_id]=in_1&expand[0]=latest_charge&"
            "description=a%20b%26c%3Dd%2F%C3%A9");
  // Brackets are kept only in names; in values they are escaped.
  EXPECT_EQ(FormEncode({{"name", "[x]"}}), "name=%5Bx%5D");
  EXPECT_EQ(FormEncode({}), "");
}

TEST(StripeRetry, RetriesOnlyWhereStripesSdksRetry) {
  EXPECT_TRUE(ShouldRetryStripe(0, std::nullopt, ""));  // timeout, dropped connection
  EXPECT_TRUE(ShouldRetryStripe(500, std::nullopt, ""));
  EXPECT_TRUE(ShouldRetryStripe(503, std::nullopt, ""));
  EXPECT_TRUE(ShouldRetryStripe(409, std::nullopt, "idempotency_key_in_use"));
  EXPECT_TRUE(ShouldRetryStripe(429, std::nullopt, "lock_timeout"));
  EXPECT_FALSE(ShouldRetryStripe(429, std::nullopt, "rate_limit"));
  EXPECT_FALSE(ShouldRetryStripe(402, std::nullopt, "card_declined"));
  EXPECT_FALSE(ShouldRetryStripe(400, std::nullopt, ""));
  EXPECT_FALSE(ShouldRetryStripe(404, std::nullopt, "resource_missing"));
  // The header wins over the status, both ways.
  EXPECT_TRUE(ShouldRetryStripe(400, true, ""));
  EXPECT_FALSE(ShouldRetryStripe(500, false, ""));
}

TEST(StripeRetry, DelaysGrowWithJitterWithinTheirBounds) {
  StripeOptions o;
  EXPECT_EQ(StripeRetryDelay(o, 0, 0.0), 500ms);  // floor: the base
  EXPECT_EQ(StripeRetryDelay(o, 0, 1.0), 500ms);
  EXPECT_EQ(StripeRetryDelay(o, 1, 0.0), 500ms);
  EXPECT_EQ(StripeRetryDelay(o, 1, 1.0), 1000ms);
  EXPECT_EQ(StripeRetryDelay(o, 2, 0.5), 1500ms);
  EXPECT_EQ(StripeRetryDelay(o, 10, 1.0), 5000ms);  // capped
  EXPECT_EQ(StripeRetryDelay(o, 10, 0.0), 2500ms);
}

// --- webhook signatures -----------------------------------------------------

const std::string kSecret = "whsec_test_secret";
const std::string kBody = "{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\"\n}";
const Instant kNow = FromUnixSeconds(1'796'000'000);
const int64_t kT = 1'796'000'000;

TEST(WebhookSignature, IsTheHmacOfTimestampDotBody) {
  // Computed independently:
  //   printf '1796000000.{}' | openssl dgst -sha256 -hmac whsec_test_secret
  EXPECT_EQ(StripeSignatureV1(kSecret, kT, "{}"),
            "5fcf3f35f0c8b48228ae5c14ece97d57d8970dcace6da27e8249cb5e5bea305d");
  EXPECT_EQ(StripeSignatureHeader(kSecret, kT, "{}"),
            "t=1796000000,v1=5fcf3f35f0c8b48228ae5c14ece97d57d8970dcace6da27e8249cb5e5bea305d");
}

TEST(WebhookSignature, AcceptsAValidSignatureAndAnyMatchingV1) {
  const std::string sig = StripeSignatureV1(kSecret, kT, kBody);
  EXPECT_TRUE(VerifyStripeSignature("t=1796000000,v1=" + sig, kBody, kSecret, kNow).ok());
  // A rolled secret: two v1, one of them ours; a bad one beside it is ignored.
  const std::string other = StripeSignatureV1("whsec_old", kT, kBody);
  EXPECT_TRUE(
      VerifyStripeSignature("t=1796000000,v1=" + other + ",v1=" + sig, kBody, kSecret, kNow).ok());
  EXPECT_TRUE(VerifyStripeSignature("t=1796000000,v1=bad_signature,v1=" + sig + ",v0=abc", kBody,
                                    kSecret, kNow)
                  .ok());
  // Within the tolerance on either side.
  EXPECT_TRUE(VerifyStripeSignature("t=1796000000,v1=" + sig, kBody, kSecret, kNow + 300s).ok());
  EXPECT_TRUE(VerifyStripeSignature("t=1796000000,v1=" + sig, kBody, kSecret, kNow - 300s).ok());
}

TEST(WebhookSignature, RefusesForgedStaleAlteredUnsignedAndWrongScheme) {
  const std::string sig = StripeSignatureV1(kSecret, kT, kBody);
  auto refused = [&](const std::string& header, const std::string& body, Instant now) {
    const Status s = VerifyStripeSignature(header, body, kSecret, now);
    if (s.ok()) return false;
    EXPECT_EQ(s.error().code, ErrorCode::kUnauthenticated);
    EXPECT_EQ(s.error().field, "Stripe-Signature");
    return true;
  };
  EXPECT_TRUE(refused("", kBody, kNow));                               // unsigned
  EXPECT_TRUE(refused("v1,t=1", kBody, kNow));                         // malformed
  EXPECT_TRUE(refused("t=", kBody, kNow));                             // no timestamp
  EXPECT_TRUE(refused("v1=" + sig, kBody, kNow));                      // no timestamp
  EXPECT_TRUE(refused("t=1796000000,v0=" + sig, kBody, kNow));         // wrong scheme
  EXPECT_TRUE(refused("t=1796000000,v1=" + sig, kBody + " ", kNow));   // altered body
  EXPECT_TRUE(refused("t=1796000001,v1=" + sig, kBody, kNow));         // altered time
  EXPECT_TRUE(refused("t=1796000000,v1=" + sig, kBody, kNow + 301s));  // stale
  EXPECT_TRUE(refused("t=1796000000,v1=" + sig, kBody, kNow - 301s));  // far future
  EXPECT_TRUE(refused("t=1796000000,v1=" + StripeSignatureV1("whsec_forged", kT, kBody), kBody,
                      kNow));                                                 // forged
  EXPECT_TRUE(refused("t=1796000000,v1=" + sig.substr(0, 63), kBody, kNow));  // truncated
  EXPECT_TRUE(refused(std::string(5000, 'v'), kBody, kNow));                  // unbounded
}

// --- the client against the fake Stripe --------------------------------------

class FakeStripe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto dir =
        std::filesystem::temp_directory_path() / ("fake-stripe-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    const std::string port_file = (dir / "port").string();
    pid_ = fork();
    if (pid_ == 0) {
      const std::string script = std::string(CAAS_REPO) + "/tests/fake_stripe/server.py";
      execlp("python3", "python3", script.c_str(), "--port-file", port_file.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 200 && port_ == 0; ++i) {
      std::ifstream in(port_file);
      if (!(in >> port_)) std::this_thread::sleep_for(25ms);
    }
    std::filesystem::remove_all(dir);
    ASSERT_NE(port_, 0) << "the fake Stripe (tests/fake_stripe/server.py) did not start";
  }
  static void TearDownTestSuite() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }

  static std::string Base() { return "http://127.0.0.1:" + std::to_string(port_); }

  StripeClient Client(std::chrono::milliseconds timeout = 5s) {
    StripeOptions o;
    o.api_base = Base();
    o.secret_key = "sk_test_caas";
    o.timeout = timeout;
    o.base_delay = 1ms;
    o.max_delay = 4ms;
    return StripeClient(o);
  }

  // The fake's control endpoints, through a client with no retries.
  boost::json::object State() {
    auto r = Client().Get("/_fake/state");
    EXPECT_TRUE(r.ok()) << r.message;
    return r.object;
  }
  // Queues faults in the fake (its control endpoint takes a JSON body).
  void Faults(const std::string& json) {
    const std::string cmd =
        "curl -s -o /dev/null -X POST --data-binary '" + json + "' " + Base() + "/_fake/faults";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  int Charges(const std::string& invoice) {
    auto s = State();
    const auto& per = s.at("charges_per_invoice").as_object();
    const auto* n = per.if_contains(invoice);
    return n ? static_cast<int>(n->as_int64()) : 0;
  }

  // A customer with a card attached, from a test payment method id.
  std::pair<std::string, std::string> CustomerWithCard(const std::string& test_pm,
                                                       const std::string& tenant) {
    auto client = Client();
    auto c = client.Post("/v1/customers",
                         {{"email", tenant + "@example.com"}, {"metadata[tenant_id]", tenant}},
                         "customer:" + tenant);
    EXPECT_TRUE(c.ok()) << c.message;
    const std::string cus(c.object.at("id").as_string());
    auto pm = client.Post("/v1/payment_methods/" + test_pm + "/attach", {{"customer", cus}},
                          "attach:" + tenant + ":" + test_pm);
    EXPECT_TRUE(pm.ok()) << pm.message;
    return {cus, std::string(pm.object.at("id").as_string())};
  }

  static inline pid_t pid_ = 0;
  static inline int port_ = 0;
};

TEST_F(FakeStripe, ACustomerIsCreatedOncePerKeyAndAKeyReusedWithOtherParamsIsRefused) {
  auto client = Client();
  auto a = client.Post("/v1/customers", {{"email", "a@example.com"}}, "customer:t-once");
  auto b = client.Post("/v1/customers", {{"email", "a@example.com"}}, "customer:t-once");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a.object.at("id"), b.object.at("id"));
  EXPECT_FALSE(a.replayed);
  EXPECT_TRUE(b.replayed);
  auto c = client.Post("/v1/customers", {{"email", "other@example.com"}}, "customer:t-once");
  EXPECT_EQ(c.outcome, StripeOutcome::kIdempotencyError);
  EXPECT_EQ(c.attempts, 1);  // never retried
}

TEST_F(FakeStripe, AnOffSessionChargeWithAGoodCardSucceedsOnce) {
  auto [cus, pm] = CustomerWithCard("pm_card_visa", "t-visa");
  auto client = Client();
  OffSessionCharge ch{"in_visa", 1, 12777, "USD", cus, pm};
  auto r = CreateOffSessionPaymentIntent(client, ch);
  ASSERT_TRUE(r.ok()) << r.message;
  EXPECT_EQ(r.object.at("status"), "succeeded");
  EXPECT_EQ(r.object.at("amount"), 12777);
  EXPECT_EQ(r.object.at("currency"), "usd");
  EXPECT_EQ(r.object.at("metadata").at("invoice_id"), "in_visa");
  // The same attempt again: the first answer, no second charge.
  auto again = CreateOffSessionPaymentIntent(client, ch);
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.object.at("id"), r.object.at("id"));
  EXPECT_EQ(Charges("in_visa"), 1);
}

TEST_F(FakeStripe, EachDeclineKindComesBackTypedAndIsNeverRetried) {
  struct Case {
    const char* pm;
    StripeOutcome outcome;
    const char* code;
    const char* decline_code;
    const char* advice_code;
  };
  const Case cases[] = {
      {"pm_card_chargeDeclined", StripeOutcome::kDeclined, "card_declined", "generic_decline",
       "try_again_later"},
      {"pm_card_visa_chargeDeclinedInsufficientFunds", StripeOutcome::kDeclined, "card_declined",
       "insufficient_funds", "try_again_later"},
      {"pm_card_visa_chargeDeclinedLostCard", StripeOutcome::kDeclined, "card_declined",
       "lost_card", "do_not_try_again"},
      {"pm_card_chargeDeclinedExpiredCard", StripeOutcome::kDeclined, "expired_card",
       "expired_card", "confirm_card_data"},
      {"pm_card_chargeCustomerFail", StripeOutcome::kDeclined, "card_declined", "generic_decline",
       "try_again_later"},
      {"pm_card_authenticationRequired", StripeOutcome::kAuthenticationRequired,
       "authentication_required", "", ""},
  };
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.pm);
    const std::string tenant = "t-decline-" + std::to_string(n++);
    auto [cus, pm] = CustomerWithCard(c.pm, tenant);
    auto client = Client();
    const std::string invoice = "in_" + tenant;
    auto r = CreateOffSessionPaymentIntent(client, {invoice, 1, 9900, "usd", cus, pm});
    EXPECT_EQ(r.outcome, c.outcome) << StripeOutcomeName(r.outcome);
    EXPECT_EQ(r.http_status, 402);
    EXPECT_EQ(r.type, "card_error");
    EXPECT_EQ(r.code, c.code);
    EXPECT_EQ(r.decline_code, c.decline_code);
    EXPECT_EQ(r.advice_code, c.advice_code);
    EXPECT_EQ(r.payment_intent_id.rfind("pi_", 0), 0u);
    EXPECT_EQ(r.attempts, 1);
    EXPECT_FALSE(r.request_id.empty());
    EXPECT_EQ(Charges(invoice), 0);
    // The PaymentIntent is left waiting for another payment method.
    auto pi = client.Get("/v1/payment_intents/" + r.payment_intent_id);
    ASSERT_TRUE(pi.ok());
    EXPECT_EQ(pi.object.at("status"), "requires_payment_method");
  }
}

TEST_F(FakeStripe, ServerErrorsAndLockTimeoutsAreRetriedWithTheSameKey) {
  auto [cus, pm] = CustomerWithCard("pm_card_visa", "t-retry");
  Faults(R"([{"path":"/v1/payment_intents","kind":"status","status":500},)"
         R"({"path":"/v1/payment_intents","kind":"rate_limit","code":"lock_timeout"}])");
  auto client = Client();
  auto r = CreateOffSessionPaymentIntent(client, {"in_retry", 1, 500, "usd", cus, pm});
  ASSERT_TRUE(r.ok()) << StripeOutcomeName(r.outcome) << " " << r.message;
  EXPECT_EQ(r.attempts, 3);
  EXPECT_EQ(Charges("in_retry"), 1);
}

TEST_F(FakeStripe, APlainRateLimitIsNotRetriedAndRetriesStopAtTheBound) {
  auto [cus, pm] = CustomerWithCard("pm_card_visa", "t-limit");
  Faults(R"([{"path":"/v1/payment_intents","kind":"rate_limit","code":"rate_limit"}])");
  auto client = Client();
  auto r = CreateOffSessionPaymentIntent(client, {"in_limit", 1, 500, "usd", cus, pm});
  EXPECT_EQ(r.outcome, StripeOutcome::kRateLimited);
  EXPECT_EQ(r.attempts, 1);
  Faults(R"([{"path":"/v1/payment_intents","kind":"status","status":503},)"
         R"({"path":"/v1/payment_intents","kind":"status","status":503},)"
         R"({"path":"/v1/payment_intents","kind":"status","status":503}])");
  auto u = CreateOffSessionPaymentIntent(client, {"in_limit", 2, 500, "usd", cus, pm});
  EXPECT_EQ(u.outcome, StripeOutcome::kUnavailable);
  EXPECT_EQ(u.attempts, 3);  // the first try and two retries
  EXPECT_EQ(Charges("in_limit"), 0);
}

TEST_F(FakeStripe, ATimeoutAfterTheChargeOrADroppedConnectionNeverChargesTwice) {
  auto [cus, pm] = CustomerWithCard("pm_card_visa", "t-timeout");
  // Stripe charged, then the answer never came: the retry under the same key
  // gets the stored answer.
  for (int i = 0; i < 10; ++i) {
    const std::string invoice = "in_timeout_" + std::to_string(i);
    Faults(i % 2
               ? R"([{"path":"/v1/payment_intents","kind":"drop"}])"
               : R"([{"path":"/v1/payment_intents","kind":"timeout_after_success","seconds":1}])");
    auto client = Client(300ms);
    auto r = CreateOffSessionPaymentIntent(client, {invoice, 1, 700, "usd", cus, pm});
    ASSERT_TRUE(r.ok()) << StripeOutcomeName(r.outcome) << " " << r.message;
    EXPECT_EQ(r.attempts, 2);
    EXPECT_EQ(r.replayed, i % 2 == 0);
    EXPECT_EQ(Charges(invoice), 1);
  }
  // With no retries left the outcome is unknown, not a failure: the same key
  // later settles it.
  StripeOptions o;
  o.api_base = Base();
  o.secret_key = "sk_test_caas";
  o.timeout = 300ms;
  o.max_retries = 0;
  StripeClient once(o);
  Faults(R"([{"path":"/v1/payment_intents","kind":"timeout_after_success","seconds":1}])");
  auto u = CreateOffSessionPaymentIntent(once, {"in_unknown", 1, 700, "usd", cus, pm});
  EXPECT_EQ(u.outcome, StripeOutcome::kUnknown);
  EXPECT_EQ(u.http_status, 0);
  auto settled = CreateOffSessionPaymentIntent(once, {"in_unknown", 1, 700, "usd", cus, pm});
  ASSERT_TRUE(settled.ok());
  EXPECT_TRUE(settled.replayed);
  EXPECT_EQ(settled.object.at("status"), "succeeded");
  EXPECT_EQ(Charges("in_unknown"), 1);
}

TEST_F(FakeStripe, AWrongKeyIsAnAuthenticationErrorThatNamesNoSecret) {
  StripeOptions o;
  o.api_base = Base();
  o.secret_key = "sk_live_not_for_tests_123";
  StripeClient client(o);
  auto r = client.Post("/v1/customers", {{"email", "x@example.com"}}, "customer:bad-key");
  EXPECT_EQ(r.outcome, StripeOutcome::kAuthentication);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.message.find("sk_live"), std::string::npos);
}

TEST_F(FakeStripe, ASetupIntentGivesAClientSecretAndCardsListAndDetach) {
  auto [cus, pm] = CustomerWithCard("pm_card_visa", "t-cards");
  auto client = Client();
  auto si = client.Post(
      "/v1/setup_intents",
      {{"customer", cus}, {"usage", "off_session"}, {"payment_method_types[0]", "card"}},
      "setup:t-cards:1");
  ASSERT_TRUE(si.ok()) << si.message;
  EXPECT_EQ(std::string(si.object.at("client_secret").as_string()).rfind("seti_", 0), 0u);
  auto list = client.Get("/v1/payment_methods", {{"customer", cus}, {"type", "card"}});
  ASSERT_TRUE(list.ok());
  const auto& data = list.object.at("data").as_array();
  ASSERT_EQ(data.size(), 1u);
  EXPECT_EQ(data[0].at("card").at("last4"), "4242");
  EXPECT_EQ(data[0].at("card").at("brand"), "visa");
  auto d = client.Post("/v1/payment_methods/" + pm + "/detach", {}, "detach:" + pm);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(client.Get("/v1/payment_methods", {{"customer", cus}, {"type", "card"}})
                  .object.at("data")
                  .as_array()
                  .empty());
  auto again = client.Post("/v1/payment_methods/" + pm + "/detach", {}, "detach:" + pm + ":2");
  EXPECT_EQ(again.outcome, StripeOutcome::kInvalidRequest);
}

}  // namespace
}  // namespace caas::payments
