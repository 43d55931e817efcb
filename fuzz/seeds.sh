#!/usr/bin/env bash
# Regenerates the fuzz seeds under corpus/<target>/seed-*: genuine tokens signed with the crate's
# doc-test key (tests/fixtures/doc-test-key.pem, kid doc-key, valid until 2100) and variations
# from tests/hostile.rs. Needs openssl. Run from anywhere: `bash fuzz/seeds.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
KEY=../tests/fixtures/doc-test-key.pem
V=corpus/verify
A=corpus/authorization
mkdir -p "$V" "$A"
rm -f "$V"/seed-* "$A"/seed-*

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
enc() { printf '%s' "$1" | b64url; }
# sign <header json> <payload json>: an RS256 token signed with the doc-test key.
sign() {
  local input
  input="$(enc "$1").$(enc "$2")"
  printf '%s.%s' "$input" "$(printf '%s' "$input" | openssl dgst -sha256 -sign "$KEY" -binary | b64url)"
}
claims() { # claims <exp> [extra members]
  printf '{"sub":"7d8ca528-4931-4254-9273-ea5ee853f271","iss":"https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123","client_id":"client1","origin_jti":"0b1e5c4a-6f1d-4c1e-9d7a-2f3b4c5d6e7f","token_use":"access","scope":"openid profile","auth_time":1700000000,"iat":1700000000,"exp":%s,"jti":"5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b","username":"alice"%s}' "$1" "${2:-}"
}
H='{"alg":"RS256","kid":"doc-key"}'
GOOD=$(sign "$H" "$(claims 4102444800)")

seed() { printf '%s' "$2" > "$V/seed-$1"; printf 'Bearer %s' "$2" > "$A/seed-$1"; }
seed valid "$GOOD"
seed typ-jwt "$(sign '{"alg":"RS256","kid":"doc-key","typ":"JWT"}' "$(claims 4102444800)")"
seed expired "$(sign "$H" "$(claims 1700003600)")"
seed exp-float "$(sign "$H" "$(claims 4102444800.5)")"
seed exp-twice "$(sign "$H" "$(claims 4102444800 ',"exp":1700003600')")"
seed alg-none "$(enc '{"alg":"none","kid":"doc-key"}').$(enc "$(claims 4102444800)")."
seed alg-none-signed "$(sign '{"alg":"none","kid":"doc-key"}' "$(claims 4102444800)")"
seed alg-twice "$(sign '{"alg":"RS256","alg":"none","kid":"doc-key"}' "$(claims 4102444800)")"
seed crit "$(sign '{"alg":"RS256","kid":"doc-key","crit":[]}' "$(claims 4102444800)")"
seed jku "$(sign '{"alg":"RS256","kid":"doc-key","jku":"http://127.0.0.1:9/jwks.json"}' "$(claims 4102444800)")"
seed kid-traversal "$(sign '{"alg":"RS256","kid":"../../etc/passwd"}' "$(claims 4102444800)")"
seed header-array "$(sign '["RS256","doc-key"]' "$(claims 4102444800)")"
seed payload-bomb "$(sign "$H" "$(claims 4102444800 ",\"x\":$(printf '[%.0s' $(seq 300))$(printf ']%.0s' $(seq 300))")")"
# HS256 keyed with the public key's PEM (algorithm confusion).
PEM=$(openssl pkey -in "$KEY" -pubout)
HS_INPUT="$(enc '{"alg":"HS256","kid":"doc-key"}').$(enc "$(claims 4102444800)")"
seed hs256 "$HS_INPUT.$(printf '%s' "$HS_INPUT" | openssl dgst -sha256 -hmac "$PEM" -binary | b64url)"
seed dots "$(printf '.%.0s' $(seq 200))"

# Header shapes, for the authorization target only.
printf 'bearer %s' "$GOOD" > "$A/seed-lowercase"
printf 'Bearer\t%s' "$GOOD" > "$A/seed-tab"
printf 'Bearer %s ' "$GOOD" > "$A/seed-trailing-space"
printf 'Bearer %s %s' "$GOOD" "$GOOD" > "$A/seed-two-tokens"
printf 'Basic dXNlcjpwYXNz' > "$A/seed-basic"
printf 'Bearer \xff\xfe' > "$A/seed-non-utf8"
ls -l "$V" "$A" | awk '{s+=$5} END {print NR" lines, "s" bytes"}'
