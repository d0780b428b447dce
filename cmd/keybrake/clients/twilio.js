'use strict';
// twilio-node as an agent runs it against keybrake serve. twilio-node
// builds each host from the product (api.twilio.com, messaging.twilio.com)
// and has no base URL option; its documented hook is a custom httpClient,
// here one that moves every request's origin to the proxy
// ($KEYBRAKE_URL) and hands it to the SDK's own RequestClient. The agent's
// Keybrake key ($KEYBRAKE_AGENT_KEY) goes where the auth token would: in
// the password of Basic AccountSid:password, which twilio-node takes as it
// is. Each argument is one call (sms); each prints one JSON line.
const twilio = require('twilio');

const proxy = new URL(process.env.KEYBRAKE_URL);
const sdkClient = new twilio.RequestClient();
const httpClient = {
  request(opts) {
    const u = new URL(opts.uri);
    const host = u.host;
    u.protocol = proxy.protocol;
    u.host = proxy.host;
    return sdkClient.request({...opts, uri: u.href}).then((res) => {
      lastHost = host;
      return res;
    });
  },
};
let lastHost = '';

const client = twilio(process.env.TWILIO_ACCOUNT_SID, process.env.KEYBRAKE_AGENT_KEY, {httpClient});

const calls = {
  sms: () => client.messages.create({to: '+15551234567', from: '+15550001111', body: 'Your code is 123456'}),
};

async function main() {
  for (const op of process.argv.slice(2)) {
    if (!calls[op]) throw new Error(`unknown call ${op}`);
    try {
      const m = await calls[op]();
      print({op, status: 201, sid: m.sid, host: lastHost});
    } catch (err) {
      if (!(err instanceof twilio.RestException)) throw err;
      const keybrake = err.details && err.details.keybrake;
      print({
        op,
        status: err.status,
        code: err.code,
        more_info: err.moreInfo,
        message: err.message,
        keybrake_code: keybrake ? keybrake.code : undefined,
        host: lastHost,
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
