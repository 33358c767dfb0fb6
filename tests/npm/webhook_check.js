// Stripe's own Node library on our webhook signatures (tests/e2e/test_stripe.py).
//   node webhook_check.js sign   '{"payload": "...", "secret": "whsec_...", "timestamp": 123}'
//     prints the Stripe-Signature header stripe-node makes for it;
//   node webhook_check.js verify '{"payload": "...", "header": "t=...,v1=...", "secret": "whsec_..."}'
//     prints the event id stripe-node's constructEvent accepts, or exits 1.
const Stripe = require("stripe");
const stripe = Stripe("sk_test_cross_check");
const [mode, arg] = process.argv.slice(2);
const a = JSON.parse(arg);
if (mode === "sign") {
  process.stdout.write(stripe.webhooks.generateTestHeaderString(
      {payload: a.payload, secret: a.secret, timestamp: a.timestamp}));
} else if (mode === "verify") {
  try {
    process.stdout.write(stripe.webhooks.constructEvent(a.payload, a.header, a.secret, 300).id);
  } catch (e) {
    process.stderr.write(e.message);
    process.exit(1);
  }
} else {
  process.exit(2);
}
