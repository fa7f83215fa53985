#!/usr/bin/env bash
# Compare whole-process batch verification of N mixed ES256/EdDSA ECTs:
# agentctx verify --batch, PyJWT (Debian python3-jwt, OpenSSL underneath; in one process and
# in one process per core) and
# panva/jose on Node.js. Not part of the test command. Usage:
#   bash bench/compare/run.sh [N]     (default 20000)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-20000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
/usr/bin/python3 -c 'import jwt' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-jwt python3-cryptography; }
if [ ! -d bench/compare/node_modules/jose ]; then
  (cd bench/compare && npm install --no-audit --no-fund --silent jose@6.2.18 >/dev/null)
fi

go build -o "$work/agentctx" ./cmd/agentctx
go run ./internal/cmd/benchgen -n "$n" -out "$work"

aud=spiffe://example.com/agent/b
# Each must accept every token before it is timed.
valid=$("$work/agentctx" verify --trust "$work/trust.json" --audience $aud --batch "$work/tokens.txt" | grep -c '"valid":true')
[ "$valid" = "$n" ] || { echo "agentctx accepted $valid of $n" >&2; exit 1; }
[ "$(/usr/bin/python3 bench/compare/pyjwt_verify.py "$work/tokens.txt" "$work/jwks.json")" = "$n" ]
[ "$(/usr/bin/python3 bench/compare/pyjwt_verify.py "$work/tokens.txt" "$work/jwks.json" --per-core)" = "$n" ]
[ "$(node bench/compare/jose_verify.mjs "$work/tokens.txt" "$work/jwks.json")" = "$n" ]

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "go: $(go version | cut -d' ' -f3), python: $(/usr/bin/python3 --version), PyJWT $(/usr/bin/python3 -c 'import jwt;print(jwt.__version__)'), node: $(node --version), jose 6.2.18"
hyperfine --warmup 1 --runs 5 --export-markdown "$work/result.md" \
  -n agentctx "$work/agentctx verify --trust $work/trust.json --audience $aud --batch $work/tokens.txt" \
  -n pyjwt "/usr/bin/python3 bench/compare/pyjwt_verify.py $work/tokens.txt $work/jwks.json" \
  -n pyjwt-per-core "/usr/bin/python3 bench/compare/pyjwt_verify.py $work/tokens.txt $work/jwks.json --per-core" \
  -n jose "node bench/compare/jose_verify.mjs $work/tokens.txt $work/jwks.json"
cat "$work/result.md"
