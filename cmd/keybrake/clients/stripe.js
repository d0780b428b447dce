'use strict';
// stripe-node as an agent runs it against keybrake serve: the base URL is
// the proxy ($KEYBRAKE_URL), the key the agent's Keybrake key
// ($KEYBRAKE_AGENT_KEY). Each argument is one call (refund, transfer); each
// call prints one JSON line, what the SDK made of the answer.
const Stripe = require('stripe');

const proxy = new URL(process.env.KEYBRAKE_URL);
const stripe = new Stripe(process.env.KEYBRAKE_AGENT_KEY, {
  host: proxy.hostname,
  port: Number(proxy.port),
  protocol: proxy.protocol.replace(':', ''),
  maxNetworkRetries: 0,
  telemetry: false,
});

const calls = {
  refund: () => stripe.refunds.create({charge: 'ch_1', amount: 100}),
  transfer: () => stripe.transfers.create({amount: 100, currency: 'usd', destination: 'acct_1'}),
};

async function main() {
  for (const op of process.argv.slice(2)) {
    if (!calls[op]) throw new Error(`unknown call ${op}`);
    try {
      const r = await calls[op]();
      print({op, status: r.lastResponse.statusCode, id: r.id, amount: r.amount});
    } catch (err) {
      if (!(err instanceof Stripe.errors.StripeError)) throw err;
      print({
        op,
        status: err.statusCode,
        code: err.code,
        type: err.type,
        raw_type: err.rawType,
        should_retry: err.headers ? err.headers['stripe-should-retry'] : undefined,
        message: err.message,
      });
    }
  }
}

function print(v) {
  process.stdout.write(JSON.stringify(v) + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
