// A tiny refund agent, as an agent written in TypeScript or JavaScript
// would call Stripe: the official stripe-node SDK, pointed at
// `keybrake serve` instead of api.stripe.com, holding a Keybrake agent key
// instead of the Stripe secret. It refunds 25.00 USD a charge until the
// brake refuses, and prints what Stripe's own SDK raised.
import Stripe from 'stripe';

const key = process.env.KEYBRAKE_KEY;         // kb_..., from `keybrake keys add`
const port = Number(process.env.KEYBRAKE_PORT || 8181);
if (!key) {
  console.error('set KEYBRAKE_KEY to the agent key keybrake keys add printed');
  process.exit(2);
}
const stripe = new Stripe(key, { host: '127.0.0.1', port, protocol: 'http', maxNetworkRetries: 0 });

for (let i = 1; i <= 10; i++) {
  try {
    const r = await stripe.refunds.create({ charge: `ch_${i}`, amount: 2500 });
    console.log(`refund ${i}: ${r.id} ${(r.amount / 100).toFixed(2)} ${r.currency.toUpperCase()} ${r.status}`);
  } catch (err) {
    if (!(err instanceof Stripe.errors.StripeError)) throw err;
    console.log(`refund ${i}: refused by Keybrake, ${err.type} ${err.statusCode} ${err.code}`);
    console.log(`  ${err.message}`);
    process.exit(err.statusCode === 402 ? 0 : 1);
  }
}
console.error('the cap never held');
process.exit(1);
