#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into DIR/<target>/ (default fuzz/target/seeds),
from the unit tests' cases and the RFC vectors of tower-auth-jwt/tests/data.
`scripts/fuzz --merge` minimises them, with what fuzzing found, into fuzz/corpus/<target>/,
the corpus CI replays."""

import base64, hashlib, json, os, shutil, sys, zlib

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
data_dir = os.path.join(root, "tower-auth-jwt", "tests", "data")
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "fuzz", "target", "seeds")


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def data(name):
    with open(os.path.join(data_dir, name), "rb") as f:
        return f.read()


seeds = {}


def add(target, blob):
    if isinstance(blob, str):
        blob = blob.encode()
    seeds.setdefault(target, []).append(blob)


# credentials: request target, then headers.
for head in [
    "/x?a=1&api_key=k&b\nAuthorization: Bearer abc.def-_~+/==",
    "/\nauthorization: bearer   eyJhbGciOiJIUzI1NiJ9.e30.sig  ",
    "/\nAuthorization: Basic dXNlcjpwYXNz",
    "/\nAuthorization: Bearerabc",
    "/\nAuthorization: Bearer a b",
    "/\nAuthorization: Bearer ===",
    "/\nAuthorization: Bearer a,b",
    "/\nAuthorization: Bearer \"abc\"",
    "/\nAuthorization: Bearer a\nAuthorization: Bearer a",
    "/\nX-API-Key: sk_live_abc\nCookie: a=1; session=xyz\nCookie: b=2",
    "/\nX-API-Key: k1\nX-API-Key: k2",
    "/\nCookie: session=\"quoted\"; session=other",
    "/\nCookie: session=",
    "/x?api_key=1&api_key=2\nX-API-Key:  spaced  ",
]:
    add("credentials", head)
add("credentials", b"/\nAuthorization: Bearer \xff\xfe\nCookie: session=\xc3\xa9")

# api_key: mode 0 = a presented key, mode 1 = random part for the generator.
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def key(prefix, random):
    k = f"{prefix}_{random}"
    n = zlib.crc32(k.encode())
    digits = ""
    for _ in range(6):
        digits = B62[n % 62] + digits
        n //= 62
    return k + digits


live = key("sk_live", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1")
test = key("sk_test", "0123456789abcdefghijABCDEFGHIJ")
for k in [live, test, live[:-1], live + "0", live[:20] + "-" + live[21:], "zz_" + live[8:],
          "sk_live_" + "\u00e9" + live[10:], "sk_live", "eyJhbGciOi.eyJzdWIi.sig"]:
    add("api_key", b"\x00" + k.encode())
add("api_key", b"\x01" + bytes(range(32)))
add("api_key", b"\x01" + b"\xff" * 32)

# jwt_compact: RFC 7515 / 7520 vectors and hand-made tokens.
for name in ["rfc7515_a1_hs256.json", "rfc7515_a2_rs256.json", "rfc7515_a3_es256.json",
             "rfc7520_4_1_rs256.json", "rfc7520_4_4_hs256.json"]:
    add("jwt_compact", json.loads(data(name))["jws"])
for header, claims in [
    ('{"alg":"HS256","typ":"JWT"}', '{"iss":"https://issuer.example","aud":"api","sub":"a","exp":1700000600}'),
    ('{"alg":"ES256","kid":"b","typ":"at+jwt","x5u":"https://evil"}', '{"sub":"a"}'),
    ('{"alg":"RS256","crit":["exp"]}', "{}"),
    ('{"alg":"HS256","alg":"RS256"}', "{}"),
    ('["RS256","k1"]', "{}"),
    ('{"alg":"none"}', '{"sub":"a","sub":"b"}'),
    ('{"alg":"RS256","kid":7}', '{"s\\u0075b":"x"}'),
]:
    add("jwt_compact", f"{b64(header.encode())}.{b64(claims.encode())}.c2ln")
add("jwt_compact", "eyJhbGciOiJSUzI1NiJ9=.e30.c2ln")
add("jwt_compact", "a.b.c.d")

# jwt_claims: header JSON, newline, claims JSON (signed by the target).
ok = {"iss": "https://issuer.example", "aud": "api", "sub": "alice", "exp": 1700000600,
      "iat": 1700000000}
variants = [
    ({"alg": "HS256", "typ": "JWT"}, ok),
    ({"alg": "HS256", "typ": "at+jwt", "kid": "k"}, dict(ok, aud=["other", "api"], scope="read write")),
    ({"alg": "HS256", "typ": "application/dpop+jwt"}, ok),
    ({"alg": "HS256", "crit": ["b64"]}, ok),
    ({"alg": "HS256"}, dict(ok, cnf={"jkt": "x"})),
    ({"alg": "HS256"}, dict(ok, exp=1600000000)),
    ({"alg": "HS256"}, dict(ok, exp=1800000000)),
    ({"alg": "HS256"}, dict(ok, nbf=1700001000)),
    ({"alg": "HS256"}, dict(ok, iat=1.7e9, exp=1700000600.5)),
    ({"alg": "HS256"}, {k: v for k, v in ok.items() if k != "sub"} | {"client_id": "svc"}),
    ({"alg": "HS256"}, dict(ok, aud=["api", 1])),
    ({"alg": "HS256"}, dict(ok, sub=5)),
    ({"alg": "HS256"}, dict(ok, exp=1e300)),
    ({"alg": "HS256"}, dict(ok, exp=-1)),
]
for h, c in variants:
    add("jwt_claims", json.dumps(h, separators=(",", ":")) + "\n" + json.dumps(c, separators=(",", ":")))
add("jwt_claims", '{"alg":"HS256"}\n{"iss":"https://issuer.example","iss":"x","aud":"api","exp":1700000600}')

# jwks: mode 0 JWKS, 1 JWK, 2 PEM, 3 Cache-Control.
rfc7517_a1 = {"keys": [
    {"kty": "EC", "crv": "P-256", "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
     "y": "4Etl6SRW2YilurN5XfxSjBfM68oB63eLOH3H8oFzVtQ", "use": "enc", "kid": "1"},
    {"kty": "RSA", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
     "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"},
]}
add("jwks", b"\x00" + json.dumps(rfc7517_a1).encode())
rsa = json.loads(data("rsa_public.jwk.json"))
ed = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
small = {"kty": "OKP", "crv": "Ed25519", "x": b64(b"\x01" + b"\x00" * 31), "kid": "weak"}
add("jwks", b"\x00" + json.dumps({"keys": [rsa, ed, small, {"kty": "oct", "k": b64(b"k" * 32)},
                                            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
                                            dict(ed, kid="dup"), dict(rsa, kid="dup")]}).encode())
add("jwks", b"\x00" + json.dumps({"keys": [dict(ed, alg="RS256"), dict(ed, key_ops=["sign"]),
                                            dict(ed, d="AA"), {"kty": "XYZ"}, 5, "k"]}).encode())
add("jwks", b'\x00{"keys":[]}')
for jwk in [rsa, ed, small, json.loads(data("rfc7515_a3_es256.json"))["jwk"],
            json.loads(data("rfc7515_a1_hs256.json"))["jwk"]]:
    add("jwks", b"\x01" + json.dumps(jwk).encode())
for pem in ["rsa_public.pem", "ec256_public.pem", "ec384_public.pem", "ed25519_public.pem",
            "rsa1024_public.pem", "ec256_private.pem"]:
    add("jwks", b"\x02" + data(pem))
add("jwks", b"\x03max-age=300, public\nno-cache\nmax-age=\"60\", max-age=5")

# discovery: mode 0 metadata, 1 issuer URL.
meta = {"issuer": "https://idp.example.com", "jwks_uri": "https://idp.example.com/jwks",
        "token_endpoint": "https://idp.example.com/token",
        "grant_types_supported": ["client_credentials"]}
add("discovery", b"\x00" + json.dumps(meta).encode())
add("discovery", b"\x00" + json.dumps(dict(meta, issuer="https://idp.example.com/")).encode())
add("discovery", b'\x00{"issuer":"https://idp.example.com","jwks_uri":5}')
add("discovery", b'\x00{"issuer":"https://idp.example.com","introspection_endpoint":null}')
add("discovery", b"\x00[]")
for issuer in ["https://idp.example.com", "https://idp.example.com/realms/a/",
               "http://127.0.0.1:8080/tenant", "https://idp.example.com/?x=1",
               "https://idp.example.com/#f", "idp.example.com"]:
    add("discovery", b"\x01" + issuer.encode())

# introspection: RFC 7662 section 2.2 and variants.
active = {"active": True, "client_id": "l238j323ds-23ij4", "username": "jdoe",
          "scope": "read write dolphin", "sub": "Z5O3upPC88QrAjx00dis",
          "aud": "https://api.example", "iss": "https://as.example", "exp": 1800000000,
          "iat": 1419350238, "extension_field": "twenty-seven"}
for doc in [active, {"active": False}, dict(active, active="true"),
            dict(active, token_type="Refresh_Token"), dict(active, exp=1600000000),
            dict(active, aud=["other", "https://api.example"]), dict(active, iss="https://evil"),
            {k: v for k, v in active.items() if k != "sub"}, dict(active, exp=1.8e9),
            dict(active, exp=18446744073709551615)]:
    add("introspection", json.dumps(doc))
add("introspection", '{"active":true,"active":true}')

# quickstart_config: the documented file and the test cases.
doc = """listen = "127.0.0.1:3000"
database = "sqlite://quickstart.db"
insecure_allow_http = false
api_key_prefix = "sk_test"

[[issuers]]
issuer = "https://idp.example.com"
audiences = ["quickstart"]
jwks_uri = "https://idp.example.com/jwks"
algorithms = ["RS256", "ES256"]
claims = "keycloak"
require_typ = "at+jwt"

[introspection]
endpoint = "https://idp.example.com/token/introspection"
client_id = "quickstart"
client_secret = "..."
auth_method = "post"

[cache]
apikey_ttl = "30s"
apikey_negative_ttl = "10s"
jwks_refresh = "10m"
jwks_cooldown = "30s"
introspection_ttl = "30s"
revocation_poll = "5s"
"""
add("quickstart_config", doc)
for t in ["", 'listen = "nowhere"', "bogus = 1", '[cache]\napikey_ttl = "soon"',
          'database = "mysql://x"', 'database = "postgres://u@h/db"\n[[issuers]]\nissuer = "x"\nclaims = "okta"']:
    add("quickstart_config", t)

# forward_path: the unit tests' targets.
for t in ["/", "/api/items", "/api/items/", "/api/items?x=/../admin", "/api/items#frag",
          "/api/%69tems", "/public/../admin", "/public/%2e%2E/admin", "/public/%2E/x", "/a/./b/.",
          "/a/..", "/../../admin", "/caf%C3%A9", "/a%20b", "/100%25", "", "api/items", "*",
          "http://host/api", "/api//items", "//admin", "/api/%2fadmin", "/api/%5cadmin",
          "/api\\admin", "/api;jsessionid=1", "/api/%3b", "/api/%00",
          "/api/%0d%0aX-Auth-Subject:%20root", "/api/%7f", "/api/%", "/api/%4", "/api/%zz",
          "/api/%ff", "/api/a b", "/api/\u00e9", "/api/%3F/%23"]:
    add("forward_path", t)

# dpop_proof: RFC 9449 section 4.1's example proof (accepted: the target's clock is its iat and
# its URL the target's), fresh ES256 and Ed25519 proofs when python3-cryptography is there,
# and variants of the example's header and claims (re-signed when a key is at hand, else with
# the example's signature).
RFC9449_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0"
    "VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10"
    "NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj"
    "oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ"
    ".2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
add("dpop_proof", RFC9449_PROOF)
rfc_header, rfc_claims, rfc_sig = RFC9449_PROOF.split(".")
rfc_jwk = json.loads(base64.urlsafe_b64decode(rfc_header + "=="))["jwk"]
claims = {"jti": "-BwC3ESc6acc2lTc", "htm": "POST", "htu": "https://server.example.com/token",
          "iat": 1562262616}


def signer():
    """An ES256 and an Ed25519 signer (header, sign) when python3-cryptography is installed."""
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
    except ImportError:
        return []
    out = []
    k = ec.generate_private_key(ec.SECP256R1())
    n = k.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64(n.x.to_bytes(32, "big")),
           "y": b64(n.y.to_bytes(32, "big"))}

    def es256(data, k=k):
        r, s = utils.decode_dss_signature(k.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    out.append(({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}, es256))
    e = ed25519.Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization
    raw = e.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    out.append(({"typ": "dpop+jwt", "alg": "EdDSA",
                 "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}}, e.sign))
    return out


def proof(header, body, sign=None):
    h = b64(json.dumps(header, separators=(",", ":")).encode())
    c = b64(json.dumps(body, separators=(",", ":")).encode())
    sig = b64(sign(f"{h}.{c}".encode())) if sign else rfc_sig
    return f"{h}.{c}.{sig}"


keys = signer() or [({"typ": "dpop+jwt", "alg": "ES256", "jwk": rfc_jwk}, None)]
for header, sign in keys:
    add("dpop_proof", proof(header, claims, sign))
    add("dpop_proof", proof(header, dict(claims, nonce="AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), sign))
    add("dpop_proof", proof(header, dict(claims, ath="fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"), sign))
    for h in [dict(header, typ="JWT"), dict(header, typ="dpop+jwt; v=1"), dict(header, alg="HS256"),
              dict(header, alg="none"), dict(header, jwk=dict(header["jwk"], d="AAAA")),
              {k: v for k, v in header.items() if k != "jwk"}, dict(header, jwk="x"),
              dict(header, crit=["exp"])]:
        add("dpop_proof", proof(h, claims, sign))
    for c in [dict(claims, htm="GET"), dict(claims, htu="https://server.example.com/token?x=1"),
              dict(claims, htu="HTTPS://SERVER.EXAMPLE.COM:443/token#f"), dict(claims, iat="1562262616"),
              dict(claims, iat=1562262616 + 3600), dict(claims, jti=""), dict(claims, jti=7),
              {k: v for k, v in claims.items() if k != "jti"}, dict(claims, nonce=5)]:
        add("dpop_proof", proof(header, c, sign))
add("dpop_proof", f"{rfc_header}.{rfc_claims}")
add("dpop_proof", f"{rfc_header}.{rfc_claims}.{rfc_sig}.x")
add("dpop_proof", "a.b.c")

for target, blobs in seeds.items():
    d = os.path.join(out, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for blob in blobs:
        with open(os.path.join(d, hashlib.sha1(blob).hexdigest()), "wb") as f:
            f.write(blob)
    print(f"{target}: {len(blobs)} seeds", file=sys.stderr)
