'use strict';
// resend-node as an agent runs it against keybrake serve: RESEND_BASE_URL
// is the proxy, the key the agent's Keybrake key ($KEYBRAKE_AGENT_KEY).
// resend-node throws nothing on an API error; it returns {data, error}.
// Each argument is one call (email); each prints one JSON line with what
// the SDK returned.
const {Resend} = require('resend');

const resend = new Resend(process.env.KEYBRAKE_AGENT_KEY);

const calls = {
  email: () => resend.emails.send({
    from: 'Alerts <alerts@example.com>',
    to: ['a@example.com'],
    subject: 'Your receipt',
    text: 'Thanks.',
  }),
};

async function main() {
  for (const op of process.argv.slice(2)) {
    if (!calls[op]) throw new Error(`unknown call ${op}`);
    const {data, error} = await calls[op]();
    print({op, id: data ? data.id : undefined, error: error || undefined});
  }
}

function print(v) {
  process.stdout.write(JSON.stringify(v) + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
