// Analytics in a real browser: known traffic through the gateway (a portal developer's OAuth
// client with a JWT API, a keyless API, refused and unknown requests), then the dashboard's
// Activity page and the developer's Usage page must draw their SVG charts with the expected
// labels and figures. Screenshots: e2e/screenshots/analytics-*.png (the Activity one is the
// README's docs/img/activity.png).
//
// The setup goes through the admin and portal JSON APIs (the seed spec covers those pages).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { shot, startBrowser, startGatehouse, startIdp, startUpstream, stopAll } from '../lib/harness.mjs';

const IAT = 'e2e-analytics-initial-access-token';
const ADMIN_KEY = 'e2e-analytics-admin-key-0123456789';
const ADMIN = { email: 'admin@example.com', password: 'correct horse battery staple' };
const DEV = { email: 'ana@example.com', password: 'developer password 2' };

let idp;
let gh;
let browser;
let admin;
let dev;
let clientId;

async function api(method, path, body) {
  const r = await fetch(`${gh.dashboard}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null, text };
}

async function gw(path, token) {
  const r = await fetch(`${gh.gateway}${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  await r.arrayBuffer();
  return r.status;
}

before(async () => {
  idp = await startIdp(IAT);
  const upstream = await startUpstream();
  gh = await startGatehouse({
    GATEHOUSE_ADMIN_KEY: ADMIN_KEY,
    GATEHOUSE_ADMIN_EMAIL: ADMIN.email,
    GATEHOUSE_ADMIN_PASSWORD: ADMIN.password,
    GATEHOUSE_ANALYTICS_FLUSH_INTERVAL: '1',
  });
  const created = [
    await api('POST', '/api/apis', {
      name: 'Payments', api_id: 'payments', enable_jwt: true, jwt_signing_method: 'rsa',
      jwt_source: idp.jwks_uri, jwt_identity_base_field: 'sub', jwt_policy_field_name: 'pol',
      proxy: { listen_path: '/payments/', target_url: upstream, strip_listen_path: true },
    }),
    await api('POST', '/api/apis', {
      name: 'Orders', api_id: 'orders', use_keyless: true,
      proxy: { listen_path: '/orders/', target_url: upstream, strip_listen_path: true },
    }),
    await api('POST', '/api/policies', {
      id: 'gold', name: 'Gold', rate: 0, per: 0, quota_max: 20, quota_renewal_rate: 3600,
      access_rights: { payments: { api_id: 'payments', versions: [] } },
    }),
    await api('POST', '/api/portal/catalogue', {
      id: 'payments', name: 'Payments API', short_description: 'Charge cards',
      api_id: 'payments', policy_id: 'gold', show: true,
    }),
    await api('POST', '/api/portal/developers', {
      email: DEV.email, first_name: 'Ana', last_name: 'Lytics', password: DEV.password,
    }),
  ];
  for (const c of created) assert.equal(c.status, 201, c.text);
  const conf = await api('PUT', '/api/portal/configuration', {
    enable_dcr: true, signup_enabled: false, max_clients_per_developer: 5,
    dcr_options: {
      provider: 'okta', grant_types: ['client_credentials'],
      token_endpoint_auth_method: 'client_secret_basic',
      registration_endpoint: idp.registration_endpoint, token_endpoint: idp.token_endpoint,
      access_token: IAT,
    },
  });
  assert.equal(conf.status, 200, conf.text);
  browser = await startBrowser();
  admin = await browser.newPage();
  dev = await browser.newPage();
  await admin.setViewportSize({ width: 1200, height: 900 });
  await dev.setViewportSize({ width: 1200, height: 900 });
});

after(async () => {
  await stopAll();
});

describe('analytics pages in a browser', () => {
  test('the developer creates a client and sends known traffic', async () => {
    await dev.goto(`${gh.portal}/login`);
    await dev.getByLabel('Email', { exact: true }).fill(DEV.email);
    await dev.getByLabel('Password', { exact: true }).fill(DEV.password);
    await dev.getByRole('button', { name: 'Sign in' }).click();
    await dev.waitForURL(/\/catalogue$/);
    const r = await dev.request.post(`${gh.portal}/api/clients`, {
      data: { catalogue_ids: ['payments'], client_name: 'ana-app', redirect_uris: '' },
    });
    const body = await r.json();
    assert.equal(r.status(), 201, JSON.stringify(body));
    clientId = body.client_id;
    const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(body.client_secret)}`).toString('base64');
    const tr = await fetch(idp.token_endpoint, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    const token = (await tr.json()).access_token;
    assert.ok(token);
    // 8 × 200 with the client's token, 3 × 401 without, 5 × 200 keyless, 1 × 404.
    for (let i = 0; i < 8; i++) assert.equal(await gw('/payments/charges', token), 200);
    for (let i = 0; i < 3; i++) assert.equal(await gw('/payments/charges'), 401);
    for (let i = 0; i < 5; i++) assert.equal(await gw('/orders/list'), 200);
    assert.equal(await gw('/nowhere'), 404);
    // The gateways write every second here; wait (bounded) until all 17 are stored.
    let last;
    for (let i = 0; i < 100; i++) {
      last = await api('GET', '/api/analytics/requests?range=1h');
      if (last.json?.totals?.requests === 17) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.equal(last.json.totals.requests, 17, last.text);
    assert.equal(last.json.totals.errors, 4, last.text);
  });

  test('the Activity page draws the charts with the traffic', async () => {
    await admin.goto(`${gh.dashboard}/login`);
    await admin.getByLabel('Email', { exact: true }).fill(ADMIN.email);
    await admin.getByLabel('Password', { exact: true }).fill(ADMIN.password);
    await admin.getByRole('button', { name: 'Sign in' }).click();
    await admin.waitForURL(/\/apis$/);
    await admin.getByRole('link', { name: 'Activity' }).click();
    await admin.waitForURL(/\/activity$/);
    // Default range: the last 24 hours, by hour.
    assert.equal(await admin.locator('a[aria-current="true"]').innerText(), 'Last 24h');
    await admin.getByRole('link', { name: 'Last 1h' }).click();
    await admin.waitForURL(/range=1h/);
    assert.equal(await admin.locator('#stat-requests').innerText(), '17');
    assert.equal(await admin.locator('#stat-errors').innerText(), '4');
    const legends = async (id) => admin.locator(`#${id} svg text.legend`).allTextContents();
    assert.deepEqual(await legends('chart-requests'), ['Payments (11)', 'Orders (5)', '(no API matched) (1)']);
    assert.deepEqual(await legends('chart-errors'), ['Payments (3)', '(no API matched) (1)']);
    assert.deepEqual(await legends('chart-latency'), ['p50', 'p95', 'p99']);
    assert.ok((await admin.locator('#chart-requests svg polyline').count()) >= 3);
    assert.deepEqual(await admin.locator('#chart-developers svg text.bar-value').allTextContents(), ['8']);
    assert.match(await admin.locator('#chart-developers svg text.bar-label').textContent(), /ana@example\.com/);
    assert.match(await admin.locator('#chart-clients svg text.bar-label title').textContent(), new RegExp(`ana-app \\(${clientId}\\)`));
    const rows = await admin.locator('#activity-table tbody tr').allInnerTexts();
    assert.match(rows[0], /^Payments\s+11\s+3\s+27\.3 %/);
    await shot(admin, 'analytics-activity');

    // The CSV download has the same 17 requests.
    const csv = await admin.request.get(`${gh.dashboard}/activity/export.csv?range=1h`);
    assert.equal(csv.status(), 200);
    const lines = (await csv.text()).trim().split('\r\n');
    assert.match(lines[0], /^minute_utc,api_id,developer_id,client_id,status_class,requests,/);
    assert.equal(lines.slice(1).reduce((n, l) => n + Number(l.split(',')[5]), 0), 17);

    // A custom range through the plain GET form; a bad one is shown beside its field.
    await admin.goto(`${gh.dashboard}/activity?from=2020-01-01T00:00&to=2020-01-02T00:00`);
    assert.equal(await admin.locator('#stat-requests').innerText(), '0');
    await admin.goto(`${gh.dashboard}/activity?from=2020-13-01T00:00`);
    assert.match(await admin.locator('#err-from').innerText(), /from must be/);
  });

  test('the Usage page shows the developer their client, its errors and quota left', async () => {
    await dev.goto(`${gh.portal}/clients`);
    await dev.getByRole('link', { name: 'Usage and quota' }).click();
    await dev.waitForURL(/\/usage$/);
    await dev.getByRole('link', { name: 'Last 1h' }).click();
    await dev.waitForURL(/range=1h/);
    const legend = await dev.locator('#chart-requests svg text.legend').allTextContents();
    assert.deepEqual(legend, [`ana-app (${clientId}) (8)`]);
    // Without a token there is no client: the 401s are not the developer's.
    assert.equal(await dev.locator('#chart-errors svg text.legend').count(), 0);
    const row = await dev.locator('#usage-table tbody tr').first().innerText();
    assert.match(row, /ana-app/);
    assert.match(row, /\b8\b/);
    assert.match(row, /12 of 20 per hour/);
    assert.match(row, /UTC/);
    const page = await dev.content();
    assert.ok(!page.includes('Orders') && !page.includes('no API matched'));
    await shot(dev, 'analytics-portal-usage');
  });
});
