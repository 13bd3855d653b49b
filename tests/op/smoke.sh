#!/usr/bin/env bash
# Smoke test of the test OpenID provider's configuration (server.mjs), with curl on loopback.
# Not run by scripts/test; run it after changing server.mjs:
#
#   tests/op/smoke.sh                 starts its own provider (npm ci first if needed)
#   tests/op/smoke.sh URL             checks a running provider, e.g. http://127.0.0.1:41234
#
# Needs curl and node. Exits non-zero at the first failed check.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
base=${1:-}
server_pid=""
log=""

cleanup() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  [[ -n $log ]] && rm -f "$log"
}
trap cleanup EXIT

fail() {
  echo "smoke: FAIL: $*" >&2
  [[ -n $log ]] && { echo "--- provider log" >&2; cat "$log" >&2; }
  exit 1
}
ok() { echo "smoke: ok: $*" >&2; }

if [[ -z $base ]]; then
  if [[ ! -d $here/node_modules/oidc-provider ]]; then
    (cd "$here" && npm ci --no-audit --no-fund >&2)
  fi
  # The Node.js 22 the lock file pins for this platform, when there is one (see scripts/test).
  if [[ -x $here/node_modules/.bin/node ]]; then
    PATH="$here/node_modules/.bin:$PATH"
  fi
  log=$(mktemp)
  PORT=0 node "$here/server.mjs" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    base=$(sed -n 's/^listening on //p' "$log")
    [[ -n $base ]] && break
    kill -0 "$server_pid" 2>/dev/null || fail "provider exited"
    sleep 0.1
  done
  [[ -n $base ]] || fail "provider did not start"
fi
echo "smoke: provider at $base" >&2

# json EXPR < document: prints the value of the JS expression EXPR over `d` (the parsed JSON).
json() {
  node -e '
    let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => {
      const d = JSON.parse(s); const v = eval(process.argv[1]);
      process.stdout.write(v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v));
    });' "$1"
}

# token AUTH RESOURCE [SCOPE]: prints the token response. AUTH is basic or post.
token() {
  local auth=$1 resource=$2 scope=${3-read:items}
  local args=(-sS -X POST "$base/token" -d grant_type=client_credentials)
  [[ -n $resource ]] && args+=(--data-urlencode "resource=$resource")
  [[ -n $scope ]] && args+=(--data-urlencode "scope=$scope")
  case $auth in
    basic) args+=(-u tower-auth-cc:tower-auth-cc-secret) ;;
    post) args+=(-d client_id=tower-auth-cc-post -d client_secret=tower-auth-cc-post-secret) ;;
    *) fail "unknown auth $auth" ;;
  esac
  curl "${args[@]}"
}

# check_jwt TOKEN ALG AUD TTL CLIENT: verifies header (typ at+jwt, alg, kid), signature against
# the provider's JWKS, and claims (iss, aud, client_id, scope, exp - iat).
check_jwt() {
  # shellcheck disable=SC2016 # JavaScript template literals, not shell expansions
  node --input-type=module -e '
    import * as crypto from "node:crypto";
    const [token, alg, aud, ttl, client, base] = process.argv.slice(1);
    const [h, p, s] = token.split(".");
    const header = JSON.parse(Buffer.from(h, "base64url"));
    const claims = JSON.parse(Buffer.from(p, "base64url"));
    const die = (m) => { console.error(m, JSON.stringify({ header, claims })); process.exit(1); };
    if (header.typ !== "at+jwt") die(`typ is ${header.typ}`);
    if (header.alg !== alg) die(`alg is ${header.alg}, want ${alg}`);
    const { keys } = await (await fetch(`${base}/jwks`)).json();
    const jwk = keys.find((k) => k.kid === header.kid);
    if (!jwk || jwk.alg !== alg) die(`no JWKS key for kid ${header.kid} with alg ${alg}`);
    const key = crypto.createPublicKey({ key: jwk, format: "jwk" });
    const data = Buffer.from(`${h}.${p}`);
    const sig = Buffer.from(s, "base64url");
    const valid = alg === "EdDSA" ? crypto.verify(null, data, key, sig)
      : crypto.verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, sig);
    if (!valid) die("bad signature");
    if (claims.iss !== base) die(`iss is ${claims.iss}`);
    if (claims.aud !== aud) die(`aud is ${claims.aud}, want ${aud}`);
    if (claims.client_id !== client) die(`client_id is ${claims.client_id}`);
    if (claims.sub !== client) die(`sub is ${claims.sub}`);
    if (claims.scope !== "read:items") die(`scope is ${claims.scope}`);
    if (claims.exp - claims.iat !== Number(ttl)) die(`lifetime is ${claims.exp - claims.iat}, want ${ttl}`);
    if (!claims.jti) die("no jti");
  ' "$1" "$2" "$3" "$4" "$5" "$base"
}

# introspect TOKEN [AS]: AS is rs (basic, default), rs-post or cc-post.
introspect() {
  local as=${2:-rs}
  local args=(-sS -X POST "$base/token/introspection" --data-urlencode "token=$1")
  case $as in
    rs) args+=(-u tower-auth-rs:tower-auth-rs-secret) ;;
    rs-post) args+=(-d client_id=tower-auth-rs-post -d client_secret=tower-auth-rs-post-secret) ;;
    cc-post) args+=(-d client_id=tower-auth-cc-post -d client_secret=tower-auth-cc-post-secret) ;;
  esac
  curl "${args[@]}"
}

# --- discovery
disco=$(curl -sSf "$base/.well-known/openid-configuration") || fail "discovery"
[[ $(json d.issuer <<<"$disco") == "$base" ]] || fail "discovery issuer: $disco"
[[ $(json d.introspection_endpoint <<<"$disco") == "$base/token/introspection" ]] || fail "no introspection endpoint"
[[ $(json d.revocation_endpoint <<<"$disco") == "$base/token/revocation" ]] || fail "no revocation endpoint"
[[ $(json 'd.grant_types_supported.includes("client_credentials")' <<<"$disco") == true ]] || fail "no client_credentials"
[[ $(curl -sSf "$base/jwks" | json 'd.keys.map((k) => k.alg).join(" ")') == "RS256 ES256 EdDSA" ]] || fail "jwks algs"
[[ $(curl -sSf "$base/jwks" | json 'd.keys.some((k) => k.d || k.p || k.q)') == false ]] || fail "jwks leaks private parts"
ok "discovery and jwks"

# --- JWT access tokens, each resource, both client auth methods
for spec in rs256:RS256:300 es256:ES256:300 eddsa:EdDSA:300 short:RS256:5; do
  IFS=: read -r name alg ttl <<<"$spec"
  resource="urn:tower-auth:$name"
  for auth in basic post; do
    client=tower-auth-cc; [[ $auth == post ]] && client=tower-auth-cc-post
    resp=$(token "$auth" "$resource")
    at=$(json d.access_token <<<"$resp")
    [[ -n $at ]] || fail "no token for $resource ($auth): $resp"
    [[ $(json d.token_type <<<"$resp") == Bearer ]] || fail "token_type: $resp"
    [[ $(json d.expires_in <<<"$resp") == "$ttl" ]] || fail "expires_in: $resp"
    check_jwt "$at" "$alg" "$resource" "$ttl" "$client" || fail "JWT for $resource ($auth)"
  done
  ok "$resource: at+jwt $alg, ${ttl}s, basic and post"
done

# --- default resource (none asked): rs256
at=$(token basic "" | json d.access_token)
check_jwt "$at" RS256 urn:tower-auth:rs256 300 tower-auth-cc || fail "default resource"
ok "no resource -> urn:tower-auth:rs256"

# --- opaque token: introspect, revoke, introspect
for auth in basic post; do
  client=tower-auth-cc; [[ $auth == post ]] && client=tower-auth-cc-post
  resp=$(token "$auth" urn:tower-auth:opaque "read:items write:items")
  at=$(json d.access_token <<<"$resp")
  [[ -n $at && $at != *.*.* ]] || fail "opaque token: $resp"
  for as in rs rs-post; do
    intro=$(introspect "$at" "$as")
    [[ $(json d.active <<<"$intro") == true ]] || fail "introspection ($as) not active: $intro"
    [[ $(json d.client_id <<<"$intro") == "$client" ]] || fail "introspection client_id: $intro"
    [[ $(json d.aud <<<"$intro") == urn:tower-auth:opaque ]] || fail "introspection aud: $intro"
    [[ $(json d.scope <<<"$intro") == "read:items write:items" ]] || fail "introspection scope: $intro"
    [[ $(json d.token_type <<<"$intro") == Bearer ]] || fail "introspection token_type: $intro"
    [[ $(json d.iss <<<"$intro") == "$base" ]] || fail "introspection iss: $intro"
    [[ $(json 'd.exp - d.iat' <<<"$intro") == 300 ]] || fail "introspection exp: $intro"
  done
  if [[ $auth == basic ]]; then
    # another (non resource-server) client may not see it
    [[ $(introspect "$at" cc-post | json d.active) == false ]] || fail "foreign client could introspect"
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$base/token/revocation" \
      -u tower-auth-cc:tower-auth-cc-secret --data-urlencode "token=$at" -d token_type_hint=access_token)
  else
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$base/token/revocation" \
      -d client_id=tower-auth-cc-post -d client_secret=tower-auth-cc-post-secret --data-urlencode "token=$at")
  fi
  [[ $code == 200 ]] || fail "revocation status $code"
  intro=$(introspect "$at")
  [[ $intro == '{"active":false}' ]] || fail "revoked token still active: $intro"
  ok "opaque ($auth): introspection active, revoked, introspection inactive"
done
[[ $(introspect "not-a-token" | json d.active) == false ]] || fail "unknown token active"
ok "unknown token inactive"

resp=$(token basic urn:tower-auth:opaque-short)
intro=$(introspect "$(json d.access_token <<<"$resp")")
[[ $(json 'd.active && d.exp - d.iat' <<<"$intro") == 5 ]] || fail "opaque-short: $intro"
ok "urn:tower-auth:opaque-short: 5 s"

# --- authorization code + PKCE with tower-auth-web, through the dev login and consent forms
jar=$(mktemp)
verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk
challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM # S256 of the verifier (RFC 7636 B)
redirect=http://127.0.0.1/callback
follow() { curl -sS -c "$jar" -b "$jar" -o /dev/null -w '%{redirect_url}' "$@"; }
authz="$base/auth?client_id=tower-auth-web&response_type=code&scope=openid%20email%20read:items"
authz+="&redirect_uri=$redirect&state=st&nonce=nn&resource=urn:tower-auth:rs256"
loc=$(follow "$authz")
[[ $loc == *code_challenge* || $loc == *PKCE* ]] || fail "authorization without PKCE accepted: $loc"
loc=$(follow "$authz&code_challenge=$challenge&code_challenge_method=S256")
[[ $loc == "$base/interaction/"* ]] || fail "authorize: $loc"
loc=$(follow -X POST "$loc" -d prompt=login -d login=alice -d password=any)
loc=$(follow "$loc")
[[ $loc == "$base/interaction/"* ]] || fail "consent: $loc"
loc=$(follow -X POST "$loc" -d prompt=consent)
loc=$(follow "$loc")
rm -f "$jar"
[[ $loc == "$redirect?code="*"&state=st"* ]] || fail "callback: $loc"
code=${loc#*code=}; code=${code%%&*}
resp=$(curl -sS -X POST "$base/token" -u tower-auth-web:tower-auth-web-secret -d grant_type=authorization_code \
  --data-urlencode "code=$code" --data-urlencode "redirect_uri=$redirect" -d "code_verifier=$verifier")
id_claims=$(json 'JSON.parse(Buffer.from(d.id_token.split(".")[1], "base64url"))' <<<"$resp")
[[ $(json '[d.sub, d.email, d.nonce, d.aud].join(" ")' <<<"$id_claims") == "alice alice@example.test nn tower-auth-web" ]] \
  || fail "id token: $id_claims"
at_claims=$(json 'JSON.parse(Buffer.from(d.access_token.split(".")[1], "base64url"))' <<<"$resp")
[[ $(json '[d.sub, d.aud, d.scope, d.client_id].join(" ")' <<<"$at_claims") == "alice urn:tower-auth:rs256 read:items tower-auth-web" ]] \
  || fail "access token: $at_claims"
ok "authorization code + PKCE: id token and at+jwt for alice"

# --- errors
resp=$(token basic urn:tower-auth:unknown)
[[ $(json d.error <<<"$resp") == invalid_target ]] || fail "unknown resource: $resp"
resp=$(token basic urn:tower-auth:rs256 "read:items admin")
[[ $(json d.error <<<"$resp") == invalid_scope ]] || fail "admin scope: $resp"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$base/token" -d grant_type=client_credentials \
  -u tower-auth-cc:wrong)
[[ $code == 401 ]] || fail "wrong secret gave $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$base/token/introspection" -d token=x \
  -u tower-auth-rs:wrong)
[[ $code == 401 ]] || fail "introspection with wrong secret gave $code"
ok "invalid_target, invalid_scope, invalid_client"

echo "smoke: all checks passed" >&2
