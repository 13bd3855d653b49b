// OpenID provider for tower-auth's integration tests: panva's oidc-provider, configured
// with fixed test clients and one resource server per access-token format.
//
// Run:   node tests/op/server.mjs              (after `npm ci` in tests/op)
// Env:   PORT               TCP port on 127.0.0.1; 0 or unset = an ephemeral port
//        ISSUER             issuer identifier; default http://127.0.0.1:<actual port>
//        WEB_REDIRECT_URIS  comma-separated redirect URIs of `tower-auth-web`;
//                           default http://127.0.0.1/callback
// Once listening, it prints a line `listening on http://127.0.0.1:<port>` (the base URL to
// use when PORT was 0), a line `issuer <issuer>`, then one line per request.
// It listens on 127.0.0.1 only. SIGTERM / SIGINT stop it. Nothing is persisted: tokens,
// grants and signing keys live in memory and are generated anew at every start.
//
// Endpoints (relative to the issuer):
//   /.well-known/openid-configuration   discovery (RFC 8414 metadata is the same document)
//   /jwks                                JWKS: RS256, ES256 (P-256), EdDSA (Ed25519) keys
//   /token                               token endpoint
//   /token/introspection                 RFC 7662 introspection (opaque tokens only;
//                                        JWT access tokens are rejected by oidc-provider)
//   /token/revocation                    RFC 7009 revocation
//   /auth, /me, /session/end             authorization, userinfo, logout
//
// Signing keys (one per algorithm, kid = lower-case alg name):
//   kid "rs256"  alg RS256  kty RSA 2048
//   kid "es256"  alg ES256  kty EC  P-256
//   kid "eddsa"  alg EdDSA  kty OKP Ed25519
//
// Clients:
//   tower-auth-cc       / tower-auth-cc-secret       grant client_credentials, client_secret_basic,
//                                                    scope "read:items write:items"
//   tower-auth-cc-post  / tower-auth-cc-post-secret  same, client_secret_post
//   tower-auth-rs       / tower-auth-rs-secret       the resource server: no grants; may introspect
//                                                    any token, client_secret_basic
//   tower-auth-rs-post  / tower-auth-rs-post-secret  same, client_secret_post
//   tower-auth-web      / tower-auth-web-secret      authorization_code (+ refresh_token), PKCE
//                                                    S256 required, client_secret_basic,
//                                                    redirect_uris from WEB_REDIRECT_URIS,
//                                                    scope "openid email offline_access
//                                                    read:items write:items"
//   tower-auth-native   (no secret)                  a public native app (application_type native,
//                                                    token_endpoint_auth_method none):
//                                                    authorization_code (+ refresh_token), PKCE S256
//                                                    required, redirect URIs http://127.0.0.1/callback
//                                                    and http://[::1]/callback on any port (RFC 8252
//                                                    section 7.3: oidc-provider ignores the port of
//                                                    loopback redirect URIs of native clients), same
//                                                    scope as tower-auth-web
// Any other authenticated client may only introspect its own tokens. A token can be revoked
// only by the client it was issued to (RFC 7009).
//
// Scopes: "read:items write:items admin" are the resource servers' scopes; the cc clients
// cannot obtain "admin" (invalid_scope). Client credentials tokens carry only the scopes
// asked for with `scope=`; without `scope=` the token has no scope claim.
//
// Resources (RFC 8707 `resource=` parameter); every resource server has scope
// "read:items write:items admin" and audience = its URN:
//   urn:tower-auth:rs256         JWT (typ at+jwt), RS256, TTL 300 s   <- default when no resource
//   urn:tower-auth:es256         JWT (typ at+jwt), ES256, TTL 300 s
//   urn:tower-auth:eddsa         JWT (typ at+jwt), EdDSA, TTL 300 s
//   urn:tower-auth:opaque        opaque token, TTL 300 s (introspect it)
//   urn:tower-auth:short         JWT (typ at+jwt), RS256, TTL 5 s (expiry tests)
//   urn:tower-auth:opaque-short  opaque token, TTL 5 s (introspection expiry tests)
//   urn:tower-auth:jwt-typed     JWT, RS256, TTL 300 s, but with header typ "JWT" (shaped like an
//                                ID token: for tests that require RFC 9068 at+jwt)
// Any other resource value is rejected with invalid_target.
// JWT access token claims: iss, sub (= client_id for client credentials), aud, exp, iat, jti,
// client_id, scope (when granted).
//
// DPoP (RFC 9449): on, with server nonces required in every proof (a token request with a
// proof and no nonce gets 400 use_dpop_nonce and a DPoP-Nonce header); proof algorithms ES256,
// Ed25519, EdDSA. A token request with a valid proof gets token_type DPoP and, for JWT access
// tokens, cnf.jkt. Requests without a DPoP header are unaffected.
//
// Accounts: findAccount accepts any subject (the dev login form takes any login name, e.g.
// "alice"); claims: sub, email "<sub>@example.test", email_verified true.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const HOST = '127.0.0.1';

function envPort() {
  const raw = process.env.PORT ?? '0';
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`invalid PORT: ${raw}`);
    process.exit(2);
  }
  return port;
}

function jwk(kid, alg, type, options) {
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

const SCOPES = 'read:items write:items admin';
const CC_SCOPE = 'read:items write:items';

const RESOURCES = {
  'urn:tower-auth:rs256': { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } }, accessTokenTTL: 300 },
  'urn:tower-auth:es256': { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } }, accessTokenTTL: 300 },
  'urn:tower-auth:eddsa': { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'EdDSA' } }, accessTokenTTL: 300 },
  'urn:tower-auth:opaque': { accessTokenFormat: 'opaque', accessTokenTTL: 300 },
  'urn:tower-auth:short': { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } }, accessTokenTTL: 5 },
  'urn:tower-auth:opaque-short': { accessTokenFormat: 'opaque', accessTokenTTL: 5 },
  // Signed like the others but typed `JWT`, as an ID token is: for tests that require at+jwt.
  'urn:tower-auth:jwt-typed': { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } }, accessTokenTTL: 300 },
};
const JWT_TYPED = 'urn:tower-auth:jwt-typed';
const DEFAULT_RESOURCE = 'urn:tower-auth:rs256';

// Clients allowed to introspect tokens issued to other clients.
const RESOURCE_SERVER_CLIENTS = new Set(['tower-auth-rs', 'tower-auth-rs-post']);

const webRedirectUris = (process.env.WEB_REDIRECT_URIS ?? 'http://127.0.0.1/callback')
  .split(',')
  .map((uri) => uri.trim())
  .filter(Boolean);

function accessTokenTTL(_ctx, token) {
  return token.resourceServer?.accessTokenTTL ?? 300;
}

const configuration = {
  clients: [
    {
      client_id: 'tower-auth-cc',
      client_secret: 'tower-auth-cc-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: CC_SCOPE,
    },
    {
      client_id: 'tower-auth-cc-post',
      client_secret: 'tower-auth-cc-post-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
      scope: CC_SCOPE,
    },
    {
      client_id: 'tower-auth-rs',
      client_secret: 'tower-auth-rs-secret',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: 'tower-auth-rs-post',
      client_secret: 'tower-auth-rs-post-secret',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
    },
    {
      client_id: 'tower-auth-web',
      client_secret: 'tower-auth-web-secret',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: webRedirectUris,
      token_endpoint_auth_method: 'client_secret_basic',
      scope: `openid email offline_access ${CC_SCOPE}`,
    },
    {
      client_id: 'tower-auth-native',
      application_type: 'native',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback', 'http://[::1]/callback'],
      token_endpoint_auth_method: 'none',
      scope: `openid email offline_access ${CC_SCOPE}`,
    },
  ],
  jwks: {
    keys: [
      // The first key signs ID tokens (default id_token_signed_response_alg RS256).
      jwk('rs256', 'RS256', 'rsa', { modulusLength: 2048 }),
      jwk('es256', 'ES256', 'ec', { namedCurve: 'P-256' }),
      jwk('eddsa', 'EdDSA', 'ed25519'),
    ],
  },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
  },
  // Static scopes: the client `scope` allow-lists above are enforced for these.
  scopes: ['openid', 'offline_access', ...SCOPES.split(' ')],
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@example.test`, email_verified: true };
      },
    };
  },
  pkce: {
    required: () => true,
  },
  ttl: {
    AccessToken: accessTokenTTL,
    ClientCredentials: accessTokenTTL,
    AuthorizationCode: 60,
    IdToken: 300,
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
    RefreshToken: 24 * 3600,
  },
  formats: {
    customizers: {
      async jwt(_ctx, token, jwt) {
        if (token.resourceServer?.audience === JWT_TYPED) {
          jwt.header = { ...jwt.header, typ: 'JWT' };
        }
      },
    },
  },
  features: {
    devInteractions: { enabled: true },
    dPoP: {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => true,
    },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      async allowedPolicy(_ctx, client, token) {
        return RESOURCE_SERVER_CLIENTS.has(client.clientId) || token.clientId === client.clientId;
      },
    },
    revocation: {
      enabled: true,
      async allowedPolicy(_ctx, client, token) {
        if (token.clientId !== client.clientId) {
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        }
        return true;
      },
    },
    resourceIndicators: {
      enabled: true,
      async defaultResource(_ctx, _client, oneOf) {
        return oneOf ?? DEFAULT_RESOURCE;
      },
      async useGrantedResource() {
        return true;
      },
      async getResourceServerInfo(_ctx, resourceIndicator) {
        const resource = RESOURCES[resourceIndicator];
        if (!resource) {
          throw new errors.InvalidTarget();
        }
        return { ...resource, scope: SCOPES, audience: resourceIndicator };
      },
    },
  },
};

const server = http.createServer();
server.on('error', (err) => {
  console.error(`cannot listen on ${HOST}:${process.env.PORT ?? 0}: ${err.message}`);
  process.exit(1);
});

server.listen(envPort(), HOST, () => {
  const { port } = server.address();
  const issuer = process.env.ISSUER || `http://${HOST}:${port}`;
  const provider = new Provider(issuer, configuration);

  // Minimal request log: method, path (no query string: it may carry codes), status, time.
  provider.use(async (ctx, next) => {
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      console.log(`${ctx.method} ${ctx.path} ${ctx.status} ${ms.toFixed(1)}ms`);
    }
  });
  provider.on('server_error', (_ctx, err) => {
    console.error('server_error', err);
  });

  server.on('request', provider.callback());
  console.log(`listening on http://${HOST}:${port}`);
  console.log(`issuer ${issuer}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
