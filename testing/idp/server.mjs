#!/usr/bin/env node
// =====================================================================================
// TEST-ONLY FIXTURE. Gatehouse's test IdP: a real, independently written OpenID provider
// (the npm package `oidc-provider`) behind a thin front (node:http) that gives it one of three
// shapes: plain RFC 7591/7592, Okta-shaped, Keycloak-shaped. It binds 127.0.0.1 only and exposes
// unauthenticated control endpoints under /__test/. Never run it anywhere but in tests.
// =====================================================================================
//
// node server.mjs --shape plain|okta|keycloak --port 0 --state-dir DIR
//                 [--realm NAME] [--initial-access-token TOKEN] [--audience AUD]
//                 [--access-token-ttl SECONDS] [--scopes "a b c"]
//                 [--secret-rotation off|update|read-and-update] [--watch-stdin]
//
// When ready it prints exactly one JSON line on stdout ({"ready":true,...}); logs go to stderr.
// SIGTERM / SIGINT (and, with --watch-stdin, the end of stdin) stop it cleanly.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { FileStore, adapterFor } from './lib/store.mjs';
import { KeyRing, signJws } from './lib/keys.mjs';

// stdout carries the ready line only: everything else (oidc-provider's notices use console.info)
// goes to stderr. This must happen before oidc-provider is loaded, hence the dynamic import below.
const readyOut = process.stdout;
console.log = console.error;
console.info = console.error;
console.debug = console.error;
process.stderr.on('error', () => {});
process.stdout.on('error', () => {});

const log = (...args) => console.error('[test-idp]', ...args);

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    shape: { type: 'string', default: 'plain' },
    port: { type: 'string', default: '0' },
    'state-dir': { type: 'string' },
    realm: { type: 'string', default: 'gatehouse' },
    'initial-access-token': { type: 'string' },
    audience: { type: 'string' },
    'access-token-ttl': { type: 'string' },
    scopes: { type: 'string' },
    'secret-rotation': { type: 'string' },
    'watch-stdin': { type: 'boolean', default: false },
  },
  strict: true,
});

const SHAPE = args.shape;
if (!['plain', 'okta', 'keycloak'].includes(SHAPE)) {
  log(`--shape must be plain, okta or keycloak (got ${SHAPE})`);
  process.exit(2);
}
const PORT = Number.parseInt(args.port, 10);
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
  log('--port must be 0..65535');
  process.exit(2);
}
if (!args['state-dir']) {
  log('--state-dir DIR is required');
  process.exit(2);
}
const REALM = args.realm;
if (!/^[A-Za-z0-9_.-]+$/.test(REALM)) {
  log('--realm must be [A-Za-z0-9_.-]+');
  process.exit(2);
}
const STATE_DIR = path.resolve(args['state-dir']);
fs.mkdirSync(STATE_DIR, { recursive: true });

// Settings that must survive a restart (the initial access token) live in <state-dir>/settings.json.
const settingsFile = path.join(STATE_DIR, 'settings.json');
const settings = fs.existsSync(settingsFile) ? JSON.parse(fs.readFileSync(settingsFile, 'utf8')) : {};
if (args['initial-access-token']) settings.initialAccessToken = args['initial-access-token'];
settings.initialAccessToken ||= `iat-${crypto.randomBytes(24).toString('base64url')}`;
fs.writeFileSync(settingsFile, JSON.stringify(settings));
const IAT = settings.initialAccessToken;

// Client secret rotation on RFC 7592 calls (plain and keycloak shapes), modelling documented
// vendor behaviour that oidc-provider itself does not have (it keeps the secret on PUT):
//  - 'update': a PUT on registration_client_uri issues a new client_secret and the old one stops
//    working at once. Keycloak does this for dynamically registered clients under a client policy
//    with the 'secret-rotation' executor whose "remaining expiration time for rotation during
//    update" covers the secret's lifetime and whose "rotated secret expiration" is 0 (Keycloak
//    server admin guide, "Client Secret Rotation"; ClientSecretRotationExecutor).
//  - 'read-and-update': GET rotates the secret too (Curity: "A GET or PUT request would
//    automatically rotate" the registration access token and the client secret; Curity,
//    "Dynamic Client Registration Management").
//  - 'off': oidc-provider's own behaviour (the secret is kept).
// Defaults: keycloak 'update' (a realm set up with that client policy), plain 'off'. The Okta
// shape has its own lifecycle/newSecret and ignores this. Kept in settings.json; changeable at run
// time with POST /__test/secret-rotation.
const SECRET_ROTATION_MODES = ['off', 'update', 'read-and-update'];
if (args['secret-rotation'] !== undefined) {
  if (!SECRET_ROTATION_MODES.includes(args['secret-rotation'])) {
    log(`--secret-rotation must be ${SECRET_ROTATION_MODES.join(', ')}`);
    process.exit(2);
  }
  settings.secretRotation = args['secret-rotation'];
  fs.writeFileSync(settingsFile, JSON.stringify(settings));
}
const secretRotation = () => settings.secretRotation || (SHAPE === 'keycloak' ? 'update' : 'off');

const DEFAULTS = {
  plain: { audience: 'urn:gatehouse:test-api', ttl: 3600 },
  okta: { audience: 'api://default', ttl: 3600 },
  keycloak: { audience: 'account', ttl: 300 },
}[SHAPE];
const AUDIENCE = args.audience || DEFAULTS.audience;
const ACCESS_TOKEN_TTL = args['access-token-ttl'] ? Number.parseInt(args['access-token-ttl'], 10) : DEFAULTS.ttl;
const RESOURCE = 'urn:gatehouse:test-resource';
const SCOPES = (args.scopes || [
  'openid', 'offline_access', 'profile', 'email',
  'read', 'write', 'admin', 'delete',
  'api', 'api:read', 'api:write', 'orders:read', 'orders:write', 'users:read', 'users:write',
].join(' ')).split(/\s+/).filter(Boolean);

// Where the provider is mounted and what its routes are called, per shape.
const MOUNT = { plain: '', okta: '/oauth2/default', keycloak: `/realms/${REALM}` }[SHAPE];
const ROUTES = {
  plain: {},
  okta: {
    authorization: '/v1/authorize',
    token: '/v1/token',
    jwks: '/v1/keys',
    userinfo: '/v1/userinfo',
    introspection: '/v1/introspect',
    revocation: '/v1/revoke',
    end_session: '/v1/logout',
    // Hidden: Okta's registration API (/oauth2/v1/clients) is served by the front, which calls
    // this route internally with a per-process secret header.
    registration: '/__internal/clients',
  },
  keycloak: {
    authorization: '/protocol/openid-connect/auth',
    token: '/protocol/openid-connect/token',
    jwks: '/protocol/openid-connect/certs',
    userinfo: '/protocol/openid-connect/userinfo',
    introspection: '/protocol/openid-connect/token/introspect',
    revocation: '/protocol/openid-connect/revoke',
    end_session: '/protocol/openid-connect/logout',
    registration: '/clients-registrations/openid-connect',
  },
}[SHAPE];
const route = (name, fallback) => `${MOUNT}${ROUTES[name] || fallback}`;
const TOKEN_PATH = route('token', '/token');
const JWKS_PATH = route('jwks', '/jwks');
const REG_PATH = route('registration', '/reg');
const INTERNAL_SECRET = crypto.randomBytes(24).toString('base64url');

// ---------------------------------------------------------------------------------------------
// State: keys, storage, counters
// ---------------------------------------------------------------------------------------------

const store = new FileStore(STATE_DIR);
const ring = new KeyRing(STATE_DIR);
const stats = { jwksFetches: 0 };
let jwksDelayMs = 0;
const MAX_JWKS_DELAY_MS = 120_000;

const { default: Provider, errors } = await import('oidc-provider');

const randomAlnum = (n) => {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.randomBytes(n);
  return Array.from(bytes, (b) => abc[b % abc.length]).join('');
};

// Deterministic UUID-looking id (Keycloak's service-account user id stand-in).
function uuidFrom(text) {
  const h = crypto.createHash('sha256').update(text).digest('hex');
  const v = `5${h.slice(13, 16)}`;
  const variant = ((Number.parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${v}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

// oidc-provider's own default is nanoid(): 21 characters of A-Z a-z 0-9 _ -.
const nanoidLike = () => {
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';
  return Array.from(crypto.randomBytes(21), (b) => abc[b & 63]).join('');
};
const shapeIdFactory = {
  plain: nanoidLike,
  okta: () => `0oa${randomAlnum(17)}`,
  keycloak: () => crypto.randomUUID(),
}[SHAPE];

// Test control: ids the next registrations get, in order (POST /__test/next-client-ids), to
// have the real server issue ids such as Gluu inums, or ones Gatehouse must refuse.
const nextClientIds = [];
const idFactory = (ctx) => (nextClientIds.length > 0 ? nextClientIds.shift() : shapeIdFactory(ctx));

// Test control: the origin put into registration_client_uri in registration answers
// (POST /__test/registration-client-uri-origin), a fault oidc-provider cannot produce itself.
let rcuOrigin = null;

function clientMetadata(client) {
  try {
    return client?.metadata() || {};
  } catch {
    return {};
  }
}

// Shape the claims of a JWT access token. `jwt.payload` starts as oidc-provider's
// {jti, sub, iat, exp, scope, client_id, iss, aud}.
function customizeAccessToken(ctx, token, jwt) {
  const md = clientMetadata(token.client);
  const p = jwt.payload;
  const clientId = p.client_id;
  const scopes = p.scope ? p.scope.split(' ') : [];
  const pol = typeof md.pol === 'string' ? { pol: md.pol } : {};

  if (SHAPE === 'plain') {
    p.sub ||= clientId;
    Object.assign(p, pol);
    return;
  }
  if (SHAPE === 'okta') {
    jwt.payload = {
      ver: 1,
      jti: `AT.${p.jti}`,
      iss: p.iss,
      aud: p.aud,
      iat: p.iat,
      exp: p.exp,
      cid: clientId,
      scp: scopes,
      sub: clientId,
      ...pol,
    };
    jwt.header = { typ: undefined }; // Okta sends {kid, alg} only
    return;
  }
  // keycloak
  jwt.payload = {
    exp: p.exp,
    iat: p.iat,
    jti: p.jti,
    iss: p.iss,
    aud: p.aud,
    sub: uuidFrom(`service-account:${clientId}`),
    typ: 'Bearer',
    azp: clientId,
    acr: '1',
    scope: p.scope || '',
    clientHost: '127.0.0.1',
    client_id: clientId,
    clientAddress: '127.0.0.1',
    ...pol,
  };
  jwt.header = { typ: 'JWT' };
}

function validateExtraMetadata(ctx, key, value) {
  if (value === undefined || value === null) return;
  if (key === 'pol' && typeof value !== 'string') {
    throw new errors.InvalidClientMetadata('pol must be a string');
  }
  if (key === 'gh_token_alg' && value !== 'RS256' && value !== 'ES256') {
    throw new errors.InvalidClientMetadata("gh_token_alg must be 'RS256' or 'ES256'");
  }
}

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    adapter: adapterFor(store),
    jwks: ring.jwks(),
    scopes: SCOPES,
    routes: ROUTES,
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    extraClientMetadata: {
      properties: ['pol', 'gh_token_alg'],
      validator: validateExtraMetadata,
    },
    formats: { customizers: { jwt: customizeAccessToken } },
    ttl: { ClientCredentials: ACCESS_TOKEN_TTL, AccessToken: ACCESS_TOKEN_TTL },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      registration: {
        enabled: true,
        initialAccessToken: IAT,
        issueRegistrationAccessToken: true,
        idFactory,
      },
      registrationManagement: { enabled: true, rotateRegistrationAccessToken: true },
      resourceIndicators: {
        enabled: true,
        // The resource indicator must be an absolute URI; the audience it maps to need not be.
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator, client) => {
          if (resourceIndicator !== RESOURCE && resourceIndicator !== AUDIENCE) {
            throw new errors.InvalidTarget();
          }
          const alg = clientMetadata(client).gh_token_alg === 'ES256' ? 'ES256' : 'RS256';
          return {
            scope: SCOPES.join(' '),
            audience: AUDIENCE,
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
  });
  provider.proxy = false;

  provider.use(async (ctx, next) => {
    await next();
    const routeName = ctx.oidc?.route;
    // Okta: discovery names the org-wide registration API.
    if (SHAPE === 'okta' && routeName === 'discovery' && ctx.status === 200 && ctx.body) {
      ctx.body.registration_endpoint = `${baseUrl}/oauth2/v1/clients`;
    }
    // Test control: answer a client URI on another origin.
    if (rcuOrigin && ['registration', 'client', 'client_update'].includes(routeName)
      && typeof ctx.body?.registration_client_uri === 'string') {
      const u = new URL(ctx.body.registration_client_uri);
      ctx.body.registration_client_uri = `${rcuOrigin}${u.pathname}${u.search}`;
    }
    // Keycloak: the registration access token rotates on every use, reads included.
    if (SHAPE === 'keycloak' && routeName === 'client' && ctx.method === 'GET' && ctx.status === 200) {
      const old = ctx.oidc.entities.RegistrationAccessToken;
      const rat = new provider.RegistrationAccessToken({ client: ctx.oidc.client, policies: old.policies });
      await old.destroy();
      ctx.body.registration_access_token = await rat.save();
    }
    // Secret rotation on RFC 7592 update (and read), see SECRET_ROTATION_MODES.
    if (SHAPE !== 'okta' && ctx.status === 200 && ctx.body?.client_secret
      && ((routeName === 'client_update' && secretRotation() !== 'off')
        || (routeName === 'client' && ctx.method === 'GET' && secretRotation() === 'read-and-update'))) {
      const id = ctx.body.client_id;
      const stored = store.get('Client', id);
      if (stored?.client_secret) {
        stored.client_secret = crypto.randomBytes(48).toString('base64url');
        store.set('Client', id, stored);
        ctx.body.client_secret = stored.client_secret;
      }
    }
    if (SHAPE === 'keycloak' && routeName === 'token' && ctx.status === 200 && ctx.body) {
      Object.assign(ctx.body, { refresh_expires_in: 0, 'not-before-policy': 0 });
      ctx.body.scope ||= '';
    }
  });

  provider.on('server_error', (ctx, err) => log('server_error', err));
  return provider;
}

let baseUrl;
let issuer;
let provider;
let providerHandler;

function rebuildProvider() {
  provider = buildProvider(issuer);
  providerHandler = provider.callback();
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------------------------

const MAX_BODY = 1024 * 1024;

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function send(res, status, body, headers = {}) {
  if (body === undefined) {
    res.writeHead(status, { 'cache-control': 'no-store', ...headers });
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

function parseJson(buf) {
  try {
    return { ok: true, value: JSON.parse(buf.toString('utf8') || 'null') };
  } catch {
    return { ok: false };
  }
}

// Hands a request to oidc-provider, optionally with a replaced (already read) body.
async function toProvider(req, res, body) {
  if (body !== undefined) {
    req.body = body; // oidc-provider reads an already-consumed request's body from req.body
    req.headers['content-length'] = String(body.length);
    delete req.headers['transfer-encoding'];
  }
  if (MOUNT) {
    req.originalUrl = req.url;
    req.url = req.url.slice(MOUNT.length) || '/';
  }
  await providerHandler(req, res);
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

// ---------------------------------------------------------------------------------------------
// Request translation for the vendor shapes
// ---------------------------------------------------------------------------------------------

const onlyClientCredentials = (grantTypes) => Array.isArray(grantTypes)
  && grantTypes.length > 0 && grantTypes.every((g) => g === 'client_credentials');

// A client-credentials-only client may omit response_types (Keycloak, Okta) or say ["token"]
// (Okta): oidc-provider wants [] for such a client.
function lenientResponseTypes(md) {
  if (!onlyClientCredentials(md.grant_types)) return md;
  const rt = md.response_types;
  if (rt === undefined || rt === null || (Array.isArray(rt) && rt.every((t) => t === 'token'))) {
    return { ...md, response_types: [] };
  }
  return md;
}

// client_credentials without a scope parameter: grant the client's registered scopes (what
// Keycloak and Okta do with default scopes), instead of none.
function withDefaultScope(req, body) {
  const form = new URLSearchParams(body.toString('utf8'));
  if (form.get('grant_type') !== 'client_credentials' || form.has('scope')) return undefined;
  let clientId = form.get('client_id');
  const auth = req.headers.authorization || '';
  if (!clientId && /^basic /i.test(auth)) {
    const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i > 0) {
      try {
        clientId = decodeURIComponent(decoded.slice(0, i).replace(/\+/g, ' '));
      } catch {
        clientId = decoded.slice(0, i);
      }
    }
  }
  const client = clientId ? store.get('Client', clientId) : undefined;
  if (!client?.scope) return undefined;
  form.set('scope', client.scope);
  return Buffer.from(form.toString());
}

// ---------------------------------------------------------------------------------------------
// Okta's org-wide client registration API: /oauth2/v1/clients
// ---------------------------------------------------------------------------------------------

const OKTA_VIEW = 'OktaClientView'; // side table: client_id -> { application_type, response_types, rat }
const OKTA_FIELDS = [
  'client_id', 'client_secret', 'client_id_issued_at', 'client_secret_expires_at', 'client_name',
  'client_uri', 'logo_uri', 'application_type', 'redirect_uris', 'post_logout_redirect_uris',
  'response_types', 'grant_types', 'token_endpoint_auth_method', 'initiate_login_uri', 'jwks',
  'jwks_uri', 'tos_uri', 'policy_uri', 'scope', 'pol', 'gh_token_alg',
];

function oktaError(res, status, code, summary, causes = []) {
  send(res, status, {
    errorCode: code,
    errorSummary: summary,
    errorLink: code,
    errorId: `oae${randomAlnum(22)}`,
    errorCauses: causes.map((c) => ({ errorSummary: c })),
  });
}

function oktaView(md, view, includeSecret) {
  const out = {};
  for (const k of OKTA_FIELDS) {
    if (md[k] !== undefined) out[k] = md[k];
  }
  if (view?.application_type) out.application_type = view.application_type;
  if (view?.response_types) out.response_types = view.response_types;
  if (!includeSecret) delete out.client_secret;
  return out;
}

function oktaTranslateIn(body) {
  const md = { ...body };
  for (const k of ['registration_access_token', 'registration_client_uri', 'client_id_issued_at',
    'client_secret_expires_at', 'client_secret']) delete md[k];
  const view = {
    application_type: md.application_type || 'web',
    response_types: md.response_types,
  };
  if (md.application_type === 'service') {
    if (md.grant_types !== undefined && !onlyClientCredentials(md.grant_types)) {
      return { error: "The 'service' application type only allows the 'client_credentials' grant type." };
    }
    md.grant_types ||= ['client_credentials'];
    view.response_types ||= ['token'];
    delete md.application_type;
  } else if (md.application_type === 'browser') {
    delete md.application_type;
  }
  return { md: lenientResponseTypes(md), view };
}

function oktaDuplicateName(name, exceptId) {
  return store.entries('Client').some(([id, c]) => id !== exceptId && c.client_name === name);
}

async function internalRegistration(method, pathSuffix, token, body) {
  const r = await fetch(`${baseUrl}${REG_PATH}${pathSuffix}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      'x-gh-internal': INTERNAL_SECRET,
      accept: 'application/json',
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await r.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = { error: 'server_error', error_description: text };
  }
  return { status: r.status, json };
}

async function oktaClients(req, res, url) {
  const auth = req.headers.authorization || '';
  const m = /^SSWS (.+)$/.exec(auth);
  if (!m || m[1].trim() !== IAT) {
    oktaError(res, 401, 'E0000011', 'Invalid token provided');
    return;
  }
  const rest = url.pathname.slice('/oauth2/v1/clients'.length).split('/').filter(Boolean);
  const body = await readBody(req);
  const jsonBody = () => {
    const parsed = parseJson(body);
    if (!parsed.ok || parsed.value === null || typeof parsed.value !== 'object' || Array.isArray(parsed.value)) {
      oktaError(res, 400, 'E0000003', 'The request body was not well-formed.');
      return undefined;
    }
    return parsed.value;
  };
  const unknownClient = () => send(res, 401, {
    error: 'invalid_client', error_description: "Invalid value for 'client_id' parameter.",
  });

  // GET /oauth2/v1/clients?q=&limit=&after=
  if (rest.length === 0 && req.method === 'GET') {
    const q = url.searchParams.get('q') || '';
    const limit = Math.min(Math.max(Number.parseInt(url.searchParams.get('limit') || '20', 10) || 20, 1), 200);
    const after = url.searchParams.get('after');
    let all = store.entries('Client')
      .filter(([, c]) => (c.client_name || '').startsWith(q))
      .sort(([a], [b]) => (a < b ? -1 : 1));
    if (after) all = all.filter(([id]) => id > after);
    const page = all.slice(0, limit);
    const headers = {};
    if (all.length > limit) {
      const next = new URL(url);
      next.searchParams.set('after', page[page.length - 1][0]);
      headers.link = `<${baseUrl}${next.pathname}${next.search}>; rel="next"`;
    }
    send(res, 200, page.map(([id, c]) => oktaView(c, store.get(OKTA_VIEW, id), false)), headers);
    return;
  }

  // POST /oauth2/v1/clients
  if (rest.length === 0 && req.method === 'POST') {
    const input = jsonBody();
    if (!input) return;
    if (typeof input.client_name !== 'string' || !input.client_name.trim()) {
      send(res, 400, { error: 'invalid_client_metadata', error_description: 'client_name: The field cannot be left blank' });
      return;
    }
    if (oktaDuplicateName(input.client_name)) {
      oktaError(res, 400, 'E0000001', 'Api validation failed: client_name',
        ['client_name: An object with this field already exists in the current organization']);
      return;
    }
    const t = oktaTranslateIn(input);
    if (t.error) {
      send(res, 400, { error: 'invalid_client_metadata', error_description: t.error });
      return;
    }
    const r = await internalRegistration('POST', '', IAT, t.md);
    if (r.status !== 201) {
      send(res, r.status, r.json);
      return;
    }
    const view = {
      application_type: t.view.application_type,
      response_types: t.view.response_types || r.json.response_types,
      rat: r.json.registration_access_token,
    };
    store.set(OKTA_VIEW, r.json.client_id, view);
    send(res, 201, oktaView(r.json, view, true));
    return;
  }

  const clientId = decodeURIComponent(rest[0]);
  const view = store.get(OKTA_VIEW, clientId);
  const client = store.get('Client', clientId);

  // POST /oauth2/v1/clients/{id}/lifecycle/newSecret (PUT accepted too, as older docs say)
  if (rest.length === 3 && rest[1] === 'lifecycle' && rest[2] === 'newSecret'
    && (req.method === 'POST' || req.method === 'PUT')) {
    if (!client || !view) {
      oktaError(res, 404, 'E0000007', `Not found: Resource not found: ${clientId} (PublicClientApp)`);
      return;
    }
    client.client_secret = randomAlnum(64);
    store.set('Client', clientId, client);
    send(res, 200, oktaView(client, view, true));
    return;
  }

  if (rest.length !== 1) {
    oktaError(res, 404, 'E0000022', 'The endpoint does not support the provided HTTP method');
    return;
  }
  if (!client || !view) {
    unknownClient();
    return;
  }

  if (req.method === 'GET') {
    send(res, 200, oktaView(client, view, false));
    return;
  }
  if (req.method === 'DELETE') {
    const r = await internalRegistration('DELETE', `/${encodeURIComponent(clientId)}`, view.rat);
    if (r.status !== 204) {
      send(res, r.status, r.json);
      return;
    }
    store.delete(OKTA_VIEW, clientId);
    send(res, 204);
    return;
  }
  if (req.method === 'PUT') {
    const input = jsonBody();
    if (!input) return;
    if (typeof input.client_name !== 'string' || !input.client_name.trim()) {
      send(res, 400, { error: 'invalid_client_metadata', error_description: 'client_name: The field cannot be left blank' });
      return;
    }
    if (oktaDuplicateName(input.client_name, clientId)) {
      oktaError(res, 400, 'E0000001', 'Api validation failed: client_name',
        ['client_name: An object with this field already exists in the current organization']);
      return;
    }
    const t = oktaTranslateIn(input);
    if (t.error) {
      send(res, 400, { error: 'invalid_client_metadata', error_description: t.error });
      return;
    }
    const r = await internalRegistration('PUT', `/${encodeURIComponent(clientId)}`, view.rat,
      { ...t.md, client_id: clientId });
    if (r.status !== 200) {
      send(res, r.status, r.json);
      return;
    }
    const newView = {
      application_type: t.view.application_type,
      response_types: t.view.response_types || r.json.response_types,
      rat: r.json.registration_access_token,
    };
    store.set(OKTA_VIEW, clientId, newView);
    send(res, 200, oktaView(r.json, newView, true));
    return;
  }
  oktaError(res, 405, 'E0000022', 'The endpoint does not support the provided HTTP method');
}

// ---------------------------------------------------------------------------------------------
// TEST-ONLY control endpoints: /__test/*
// ---------------------------------------------------------------------------------------------

async function testControl(req, res, url) {
  const p = url.pathname;
  const body = await readBody(req);
  const parsed = parseJson(body);
  const input = parsed.ok && parsed.value && typeof parsed.value === 'object' ? parsed.value : {};

  if (p === '/__test/rotate' && req.method === 'POST') {
    const fresh = ring.rotate(input.keep_old === true);
    rebuildProvider();
    log(`rotated keys: new ${fresh.join(', ')}; published ${ring.kids().join(', ')}`);
    send(res, 200, {
      kids: ring.kids(),
      new_kids: fresh,
      signing: { RS256: ring.current('RS256').kid, ES256: ring.current('ES256').kid },
    });
    return;
  }
  if (p === '/__test/sign' && req.method === 'POST') {
    try {
      const token = signJws(ring, {
        claims: input.claims,
        alg: input.alg || 'RS256',
        header: input.header && typeof input.header === 'object' ? input.header : {},
        secret: input.secret,
        foreignKey: input.foreign_key === true,
      });
      send(res, 200, { token });
    } catch (err) {
      send(res, 400, { error: 'invalid_request', error_description: err.message });
    }
    return;
  }
  if (p === '/__test/stats' && req.method === 'GET') {
    // clients: how many clients are registered now (dynamic registrations not yet deleted).
    send(res, 200, { jwks_fetches: stats.jwksFetches, clients: store.entries('Client').length });
    return;
  }
  if (p === '/__test/stats/reset' && req.method === 'POST') {
    stats.jwksFetches = 0;
    send(res, 200, { jwks_fetches: 0 });
    return;
  }
  if (p === '/__test/jwks-delay' && req.method === 'POST') {
    const ms = Number(input.ms);
    if (!Number.isFinite(ms) || ms < 0 || ms > MAX_JWKS_DELAY_MS) {
      send(res, 400, { error: 'invalid_request', error_description: `ms must be 0..${MAX_JWKS_DELAY_MS}` });
      return;
    }
    jwksDelayMs = Math.floor(ms);
    send(res, 200, { ms: jwksDelayMs });
    return;
  }
  if (p === '/__test/secret-rotation' && (req.method === 'GET' || req.method === 'POST')) {
    if (req.method === 'POST') {
      if (SHAPE === 'okta') {
        send(res, 400, { error: 'invalid_request', error_description: 'the okta shape rotates secrets with lifecycle/newSecret only' });
        return;
      }
      if (!SECRET_ROTATION_MODES.includes(input.mode)) {
        send(res, 400, { error: 'invalid_request', error_description: `mode must be ${SECRET_ROTATION_MODES.join(', ')}` });
        return;
      }
      settings.secretRotation = input.mode;
      fs.writeFileSync(settingsFile, JSON.stringify(settings));
    }
    send(res, 200, { mode: SHAPE === 'okta' ? 'off' : secretRotation() });
    return;
  }
  if (p === '/__test/next-client-ids' && req.method === 'POST') {
    if (!Array.isArray(input.ids) || !input.ids.every((id) => typeof id === 'string' && id.length > 0)) {
      send(res, 400, { error: 'invalid_request', error_description: 'ids must be an array of non-empty strings' });
      return;
    }
    nextClientIds.push(...input.ids);
    send(res, 200, { queued: nextClientIds.length });
    return;
  }
  if (p === '/__test/registration-client-uri-origin' && req.method === 'POST') {
    if (input.origin !== null && !(typeof input.origin === 'string' && /^https?:\/\/[^/?#]+$/.test(input.origin))) {
      send(res, 400, { error: 'invalid_request', error_description: 'origin must be scheme://host[:port] or null' });
      return;
    }
    rcuOrigin = input.origin;
    send(res, 200, { origin: rcuOrigin });
    return;
  }
  if (p === '/__test/clients' && req.method === 'GET') {
    send(res, 200, { client_ids: store.entries('Client').map(([id]) => id).sort() });
    return;
  }
  if (p === '/__test/info' && req.method === 'GET') {
    send(res, 200, { ...readyInfo(), kids: ring.kids() });
    return;
  }
  send(res, 404, { error: 'not_found', error_description: `no test control endpoint ${req.method} ${p}` });
}

// ---------------------------------------------------------------------------------------------
// The front
// ---------------------------------------------------------------------------------------------

async function handle(req, res) {
  if (!providerHandler) {
    send(res, 503, { error: 'temporarily_unavailable' });
    return;
  }
  const url = new URL(req.url, baseUrl);
  const p = url.pathname;

  if (p.startsWith('/__test/')) {
    await testControl(req, res, url);
    return;
  }
  if (SHAPE === 'okta' && (p === '/oauth2/v1/clients' || p.startsWith('/oauth2/v1/clients/'))) {
    await oktaClients(req, res, url);
    return;
  }
  if (p.includes('/__internal/') && req.headers['x-gh-internal'] !== INTERNAL_SECRET) {
    send(res, 404, { error: 'not_found' });
    return;
  }
  if (MOUNT && p !== MOUNT && !p.startsWith(`${MOUNT}/`)) {
    send(res, 404, { error: 'not_found', error_description: `nothing at ${p}` });
    return;
  }

  if (p === JWKS_PATH && req.method === 'GET') {
    stats.jwksFetches += 1;
    if (jwksDelayMs > 0) await sleep(jwksDelayMs);
  }

  if (p === TOKEN_PATH && req.method === 'POST') {
    const body = await readBody(req);
    await toProvider(req, res, withDefaultScope(req, body) || body);
    return;
  }

  if (SHAPE === 'keycloak' && (req.method === 'POST' || req.method === 'PUT')
    && (p === REG_PATH || p.startsWith(`${REG_PATH}/`))) {
    const body = await readBody(req);
    const parsed = parseJson(body);
    if (parsed.ok && parsed.value && typeof parsed.value === 'object' && !Array.isArray(parsed.value)) {
      await toProvider(req, res, Buffer.from(JSON.stringify(lenientResponseTypes(parsed.value))));
    } else {
      await toProvider(req, res, body);
    }
    return;
  }

  await toProvider(req, res);
}

function readyInfo() {
  return {
    ready: true,
    shape: SHAPE,
    port: server.address().port,
    issuer,
    jwks_uri: `${baseUrl}${JWKS_PATH}`,
    token_endpoint: `${baseUrl}${TOKEN_PATH}`,
    registration_endpoint: SHAPE === 'okta' ? `${baseUrl}/oauth2/v1/clients` : `${baseUrl}${REG_PATH}`,
    initial_access_token: IAT,
    discovery_url: `${issuer}/.well-known/openid-configuration`,
    audience: AUDIENCE,
    realm: SHAPE === 'keycloak' ? REALM : undefined,
    secret_rotation: SHAPE === 'okta' ? 'off' : secretRotation(),
    pid: process.pid,
  };
}

const server = http.createServer((req, res) => {
  const started = Date.now();
  res.on('finish', () => {
    log(`${req.method} ${req.originalUrl || req.url} -> ${res.statusCode} (${Date.now() - started} ms)`);
  });
  handle(req, res).catch((err) => {
    log('error', err);
    if (!res.headersSent) {
      send(res, err.status || 500, { error: 'server_error', error_description: String(err.message || err) });
    } else {
      res.destroy();
    }
  });
});
server.keepAliveTimeout = 5_000;
server.headersTimeout = 10_000;
server.requestTimeout = 30_000;

let stopping = false;
function shutdown(why) {
  if (stopping) return;
  stopping = true;
  log(`stopping (${why})`);
  try {
    store.save();
  } catch (err) {
    log('could not save the store', err);
  }
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2_000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
if (args['watch-stdin']) {
  // The launcher keeps our stdin open: when it goes away (even killed), so do we.
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

server.on('error', (err) => {
  log('listen failed:', err.message);
  process.exit(1);
});

server.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  baseUrl = `http://127.0.0.1:${port}`;
  issuer = `${baseUrl}${MOUNT}`;
  rebuildProvider();
  log(`${SHAPE} IdP ready at ${issuer} (state ${STATE_DIR})`);
  readyOut.write(`${JSON.stringify(readyInfo())}\n`);
});
