#!/usr/bin/env bash
# Runs the proxy-node example offline: a fake Stripe, keybrake serve in
# front of it holding a made-up test secret, and the Node agent holding
# only its Keybrake key. Needs go, node and npm; from the repository root:
#
#   bash examples/proxy-node/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$here/../.."

# waitfor FILE TEXT: until FILE says TEXT, for at most 30 s.
waitfor() {
  for _ in $(seq 300); do grep -q "$2" "$1" && return 0; sleep 0.1; done
  echo "gave up waiting for '$2' in $1:"; cat "$1"; exit 1
}

go build -o "$work/keybrake" ./cmd/keybrake
go build -o "$work/fakestripe" ./examples/proxy-node/fakestripe
"$work/fakestripe" -addr 127.0.0.1:0 > "$work/fake.log" &
waitfor "$work/fake.log" 'fake Stripe on'
fake=$(sed -n 's/^fake Stripe on //p' "$work/fake.log")

key=$("$work/keybrake" keys add refund-bot stripe --keys "$work/keybrake.keys" 2>/dev/null)
STRIPE_SECRET_KEY="sk_test_$(printf 'x%.0s' {1..24})" "$work/keybrake" serve \
  --policy "$here/keybrake.yaml" --db "$work/keybrake.db" --keys "$work/keybrake.keys" \
  --listen 127.0.0.1:0 --admin - --endpoint "stripe=$fake" 2> "$work/serve.log" &
waitfor "$work/serve.log" 'serving agents on'
port=$(sed -n 's/.*serving agents on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/serve.log")

[ -d "$here/node_modules/stripe" ] || npm ci --prefix "$here" --no-audit --no-fund --loglevel=error
KEYBRAKE_KEY="$key" KEYBRAKE_PORT="$port" node "$here/agent.mjs"

kill -TERM %2 && wait %2 || true
"$work/keybrake" audit --db "$work/keybrake.db" --policy "$here/keybrake.yaml"
