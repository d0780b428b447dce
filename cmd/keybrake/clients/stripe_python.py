"""stripe-python as an agent runs it against keybrake serve.

The base URL is the proxy ($KEYBRAKE_URL, as stripe.api_base), the key the
agent's Keybrake key ($KEYBRAKE_AGENT_KEY). Each argument is one call
(refund, transfer); each call prints one JSON line, what the SDK made of
the answer. Written for Debian's python3-stripe 5.0 (stripe.error.*).
"""

import json
import os
import sys

import stripe
import stripe.version

stripe.api_key = os.environ["KEYBRAKE_AGENT_KEY"]
stripe.api_base = os.environ["KEYBRAKE_URL"]
stripe.max_network_retries = 0
stripe.enable_telemetry = False

CALLS = {
    "refund": lambda: stripe.Refund.create(charge="ch_1", amount=100),
    "transfer": lambda: stripe.Transfer.create(amount=100, currency="usd", destination="acct_1"),
}


def main():
    for op in sys.argv[1:]:
        call = CALLS[op]
        try:
            r = call()
            line = {"op": op, "status": r.last_response.code, "id": r.id, "amount": r.amount}
        except stripe.error.StripeError as e:
            line = {
                "op": op,
                "status": e.http_status,
                "code": e.code,
                # 5.0 passes the body's code to CardError only; every
                # error keeps the whole body's error as e.error.
                "error_code": e.error.code if e.error else None,
                "type": type(e).__name__,
                "should_retry": (e.headers or {}).get("stripe-should-retry"),
                "message": e.user_message,
            }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
