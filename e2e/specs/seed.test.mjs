// The seed scenario walked in a real browser: an admin sets up the dashboard, creates a JWT API
// checked against the IdP's keys, a policy, a catalogue entry with its own (Okta) DCR settings and
// API documentation, and a developer; the developer signs in to the portal, creates an OAuth
// client with the wizard, and the app gets a token from the IdP and calls the API through the
// gateway. Every page is photographed into e2e/screenshots/.
//
// The steps share one browser and one server and run in order (node:test runs the tests of a
// file one after the other).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { shot, startBrowser, startGatehouse, startIdp, startUpstream, stopAll } from '../lib/harness.mjs';

const IAT = 'e2e-initial-access-token';
const ADMIN = { email: 'admin@example.com', password: 'correct horse battery staple' };
const DEV = { email: 'dev@example.com', password: 'developer password 1' };

const OPENAPI = `openapi: 3.0.3
info:
  title: Payments API
  version: "1.0"
  description: Charge cards and read charges.
security:
  - idp: []
paths:
  /charges:
    post:
      tags: [charges]
      summary: Create a charge
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [amount]
              properties:
                amount: {type: integer, description: Amount in cents}
                currency: {type: string, enum: [EUR, USD]}
      responses:
        "201": {description: The charge was created}
  /charges/{id}:
    get:
      tags: [charges]
      summary: Read a charge
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}, description: The charge id}
      responses:
        "200": {description: The charge}
components:
  securitySchemes:
    idp:
      type: oauth2
      flows:
        clientCredentials: {tokenUrl: https://idp.example.com/token, scopes: {}}
`;

let idp;
let gh;
let upstream;
let browser;
let admin; // the admin's page (dashboard)
let dev; // the developer's page (portal)
const client = {};

before(async () => {
  idp = await startIdp(IAT);
  upstream = await startUpstream();
  gh = await startGatehouse();
  browser = await startBrowser();
  admin = await browser.newPage();
  dev = await browser.newPage();
});

after(async () => {
  await stopAll();
});

async function field(page, label) {
  return page.getByLabel(label, { exact: true });
}

describe('dashboard and portal in a browser', () => {
  test('first start asks for the first admin through the setup link printed on the console', async () => {
    // Without the link, /setup only says where to find it.
    await admin.goto(`${gh.dashboard}/`);
    assert.match(admin.url(), /\/setup$/);
    await admin.getByRole('heading', { name: 'Open the setup link' }).waitFor();
    assert.equal(await admin.getByLabel('Password', { exact: true }).count(), 0);
    await shot(admin, '01a-dashboard-setup-without-link');
    // A guessed token is refused.
    await admin.goto(`${gh.dashboard}/setup?token=guessed`);
    await admin.getByRole('heading', { name: 'This setup link is not valid' }).waitFor();
    // The link from the console works.
    assert.ok(gh.setupLink, `gatehouse printed no setup link:\n${gh.process.output}`);
    await admin.goto(gh.setupLink);
    await shot(admin, '01-dashboard-setup');
    await (await field(admin, 'Email')).fill(ADMIN.email);
    await (await field(admin, 'Password')).fill(ADMIN.password);
    await (await field(admin, 'Password again')).fill(ADMIN.password);
    await admin.getByRole('button', { name: 'Create admin and sign in' }).click();
    await admin.waitForURL(/\/apis$/);
    await admin.getByRole('heading', { name: 'APIs' }).waitFor();
    // the setup page and its link are gone once an admin exists
    await admin.goto(`${gh.dashboard}/setup`);
    assert.match(admin.url(), /\/(login|apis)$/);
    await admin.goto(gh.setupLink);
    assert.match(admin.url(), /\/(login|apis)$/);
  });

  test('sign out and sign in again; a wrong password is shown next to the field', async () => {
    await admin.goto(`${gh.dashboard}/apis`);
    await admin.getByRole('button', { name: 'Sign out' }).click();
    await admin.waitForURL(/\/login$/);
    await (await field(admin, 'Email')).fill(ADMIN.email);
    await (await field(admin, 'Password')).fill('not the password');
    await admin.getByRole('button', { name: 'Sign in' }).click();
    await admin.locator('#err-password').waitFor();
    assert.match(await admin.locator('#err-password').innerText(), /Wrong email or password/);
    assert.equal(await (await field(admin, 'Email')).inputValue(), ADMIN.email);
    await shot(admin, '02-dashboard-login-error');
    await (await field(admin, 'Password')).fill(ADMIN.password);
    await admin.getByRole('button', { name: 'Sign in' }).click();
    await admin.waitForURL(/\/apis$/);
    await shot(admin, '03-dashboard-apis-empty');
  });

  test('a POST without the CSRF token is refused', async () => {
    const r = await admin.request.post(`${gh.dashboard}/apis/new`, {
      form: { name: 'Sneaky', listen_path: '/sneaky/', target_url: upstream },
      maxRedirects: 0,
    });
    assert.equal(r.status(), 403);
    const r2 = await admin.request.post(`${gh.dashboard}/apis/new`, {
      form: { name: 'Sneaky', listen_path: '/sneaky/', target_url: upstream, _csrf: 'x' },
      headers: { origin: 'http://evil.example' },
      maxRedirects: 0,
    });
    assert.equal(r2.status(), 403);
  });

  test('an API with an empty listen path shows the error next to the field', async () => {
    await admin.goto(`${gh.dashboard}/apis/new`);
    await (await field(admin, 'API name')).fill('Payments');
    await (await field(admin, 'API ID')).fill('payments');
    await (await field(admin, 'Target URL')).fill(upstream);
    await admin.getByRole('button', { name: 'Create API' }).click();
    const err = admin.locator('#err-listen_path');
    await err.waitFor();
    assert.match(await err.innerText(), /listen_path is required/);
    // the message sits in the listen path's field, and what was typed is kept
    assert.equal(await admin.locator('.field.has-error #f-listen_path').count(), 1);
    assert.equal(await (await field(admin, 'API name')).inputValue(), 'Payments');
    await shot(admin, '04-api-form-error');
  });

  test('create the JWT API: fetch the JWKS, then save', async () => {
    await (await field(admin, 'Listen path')).fill('/payments/');
    await admin.getByLabel('JSON Web Token', { exact: true }).check();
    await admin.getByLabel('Signing method').selectOption('rsa');
    await (await field(admin, 'JWKS URI / source')).fill(idp.jwks_uri);
    await admin.getByRole('button', { name: 'Fetch keys' }).click();
    const keys = admin.locator('#jwks-keys');
    await keys.waitFor();
    assert.match(await keys.innerText(), /RSA/);
    assert.match(await keys.innerText(), /key\(s\) at/);
    await shot(admin, '05-api-jwks-keys');
    await (await field(admin, 'Identity source (jwt_identity_base_field)')).fill('sub');
    await (await field(admin, 'Policy field name')).fill('pol');
    // Only tokens this IdP issued for this API (without both, the page warns).
    await (await field(admin, 'Allowed issuers')).fill(idp.issuer);
    await (await field(admin, 'Allowed audiences')).fill(idp.audience);
    await admin.getByRole('button', { name: 'Create API' }).click();
    await admin.waitForURL(/\/apis\/payments$/);
    await admin.getByText("API 'Payments' saved.").waitFor();
    assert.equal(await admin.locator('#api-warnings').count(), 0);
    await shot(admin, '06-api-saved');
    await admin.goto(`${gh.dashboard}/apis`);
    await admin.getByRole('link', { name: 'Payments' }).waitFor();
    await shot(admin, '07-apis-list');
  });

  test('create the policy granting the API', async () => {
    await admin.goto(`${gh.dashboard}/policies/new`);
    await (await field(admin, 'Policy name')).fill('Gold');
    await (await field(admin, 'Policy ID')).fill('gold');
    await admin.getByLabel('Payments (payments)').check();
    await (await field(admin, 'Rate (requests)')).fill('100');
    await (await field(admin, 'Per (seconds)')).fill('60');
    await (await field(admin, 'Max requests per period')).fill('10000');
    await (await field(admin, 'Quota resets every (seconds)')).fill('86400');
    await admin.getByRole('button', { name: 'Create policy' }).click();
    await admin.waitForURL(/\/policies\/gold$/);
    await admin.getByText("Policy 'Gold' saved.").waitFor();
    await shot(admin, '08-policy-saved');
  });

  test('add the catalogue entry with its own Okta DCR settings and documentation', async () => {
    await admin.goto(`${gh.dashboard}/catalogue/new`);
    await (await field(admin, 'Public API name')).fill('Payments API');
    await (await field(admin, 'Entry ID')).fill('payments');
    await admin.getByLabel('API', { exact: true }).selectOption('payments');
    await admin.getByLabel('Policy', { exact: true }).selectOption('gold');
    await (await field(admin, 'Short description')).fill('Charge cards');
    await (await field(admin, 'Long description')).fill('Take card payments.\n\nRefunds come later.');
    await shot(admin, '09-catalogue-details');

    await admin.getByRole('tab', { name: 'Settings' }).click();
    await admin.getByLabel('Override global settings').check();
    await admin.getByLabel('Enable Dynamic Client Registration for this API').check();
    await admin.getByLabel('Providers').selectOption('okta');
    await admin.getByLabel('Client Credentials').check();
    await admin.getByLabel('Token Endpoint Auth Method').selectOption('client_secret_basic');
    await (await field(admin, 'Issuer (for discovery)')).fill(idp.issuer);
    await admin.getByRole('button', { name: 'Discover' }).click();
    await admin.getByText(/Filled from/).waitFor();
    assert.equal(await (await field(admin, 'Client Registration Endpoint')).inputValue(), idp.registration_endpoint);
    assert.equal(await (await field(admin, 'Token endpoint')).inputValue(), idp.token_endpoint);
    // what was typed before Discover is kept
    assert.equal(await (await field(admin, 'Public API name')).inputValue(), 'Payments API');
    assert.match(await admin.locator('.token-state').innerText(), /not set/);
    await shot(admin, '10-catalogue-discovered');

    await (await field(admin, 'Initial Registration Access Token')).fill(IAT);
    await admin.getByRole('button', { name: 'Test connection' }).click();
    const report = admin.locator('#test-report');
    await report.waitFor();
    assert.match(await report.innerText(), /Connection test passed/);
    await shot(admin, '11-catalogue-test-connection');

    await admin.getByRole('tab', { name: 'Documentation' }).click();
    await (await field(admin, 'OpenAPI document (JSON or YAML)')).fill(OPENAPI);
    await admin.getByRole('button', { name: 'Add to the catalogue' }).click();
    await admin.waitForURL(/\/catalogue\/payments$/);
    await admin.getByText("Catalogue entry 'Payments API' saved.").waitFor();
    await admin.getByRole('tab', { name: 'Settings' }).click();
    // write-only: the page says "set" and never shows the token
    assert.match(await admin.locator('.token-state').innerText(), /^set$/);
    assert.equal(await (await field(admin, 'Initial Registration Access Token')).inputValue(), '');
    assert.ok(!(await admin.content()).includes(IAT));
    await shot(admin, '12-catalogue-saved-settings');
    await admin.goto(`${gh.dashboard}/catalogue`);
    await shot(admin, '13-catalogue-list');
  });

  test('portal settings: sign-up on, API Access tab', async () => {
    await admin.goto(`${gh.dashboard}/portal-settings`);
    await admin.getByLabel('Developers may sign up themselves').check();
    await (await field(admin, 'Max OAuth clients per developer')).fill('5');
    await admin.getByRole('button', { name: 'Save settings' }).click();
    await admin.getByText('Portal settings saved.').waitFor();
    await admin.getByRole('tab', { name: 'API Access' }).click();
    await shot(admin, '14-portal-settings-api-access');
  });

  test('add a developer', async () => {
    await admin.goto(`${gh.dashboard}/developers/new`);
    await (await field(admin, 'Email')).fill(DEV.email);
    await (await field(admin, 'First name')).fill('Dee');
    await (await field(admin, 'Last name')).fill('Veloper');
    await (await field(admin, 'Password')).fill('short');
    await admin.getByRole('button', { name: 'Add developer' }).click();
    await admin.locator('#err-password').waitFor();
    await shot(admin, '15-developer-error');
    await (await field(admin, 'Password')).fill(DEV.password);
    await admin.getByRole('button', { name: 'Add developer' }).click();
    await admin.getByText(`Developer ${DEV.email} added.`).waitFor();
    await admin.goto(`${gh.dashboard}/developers`);
    await shot(admin, '16-developers');
  });

  test('the developer signs in and reads the catalogue and the API documentation', async () => {
    await dev.goto(`${gh.portal}/`);
    await shot(dev, '17-portal-home');
    await dev.getByRole('link', { name: 'Sign in' }).first().click();
    await (await field(dev, 'Email')).fill(DEV.email);
    await (await field(dev, 'Password')).fill(DEV.password);
    await dev.getByRole('button', { name: 'Sign in' }).click();
    await dev.waitForURL(/\/catalogue$/);
    await dev.getByRole('link', { name: 'Payments API' }).waitFor();
    await shot(dev, '18-portal-catalogue');
    await dev.getByRole('link', { name: 'Payments API' }).click();
    await dev.getByText('Charge cards').first().waitFor();
    await shot(dev, '19-portal-entry');
    await dev.getByRole('link', { name: 'Documentation' }).first().click();
    await dev.getByRole('heading', { name: /Authentication/ }).waitFor();
    const text = await dev.locator('main').innerText();
    assert.match(text, /POST\s+\/charges/);
    assert.match(text, /amount/);
    assert.match(text, /one of EUR, USD/);
    assert.match(text, /clientCredentials \(token URL https:\/\/idp\.example\.com\/token\)/);
    await shot(dev, '20-portal-api-docs');
  });

  test('the developer creates an OAuth client with the wizard', async () => {
    await dev.goto(`${gh.portal}/clients`);
    await shot(dev, '21-portal-clients-empty');
    await dev.getByRole('link', { name: 'Create first OAuth Client' }).click();
    await dev.getByRole('button', { name: 'Save and continue' }).click();
    await dev.locator('#err-catalogue_ids').waitFor(); // nothing chosen yet
    await dev.getByLabel('Payments API').check();
    await shot(dev, '22-portal-wizard-apis');
    await dev.getByRole('button', { name: 'Save and continue' }).click();
    await (await field(dev, 'Client name')).fill('my-app');
    await shot(dev, '23-portal-wizard-details');
    await dev.getByRole('button', { name: 'Create' }).click();
    await dev.waitForURL(/\/clients\/[^/]+$/);
    await dev.getByText('Your OAuth client was created').waitFor();
    client.id = (await dev.locator('#client-id').innerText()).trim();
    client.secret = (await dev.locator('#client-secret').innerText()).trim();
    client.tokenEndpoint = (await dev.locator('#token-endpoint').innerText()).trim();
    assert.ok(client.id.length > 0 && client.secret.length > 0);
    assert.equal(client.tokenEndpoint, idp.token_endpoint);
    const token = await dev.locator('#curl-token').innerText();
    assert.equal(token, `curl -u "$CLIENT_ID:$SECRET" -d grant_type=client_credentials '${idp.token_endpoint}'`);
    const call = await dev.locator('.curl-call').first().innerText();
    assert.equal(call, `curl -H "Authorization: Bearer $TOKEN" '${gh.gateway}/payments/'`);
    await shot(dev, '24-portal-client-created');
  });

  test('the app gets a token from the IdP and calls the API through the gateway', async () => {
    const basic = Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString('base64');
    const tr = await fetch(client.tokenEndpoint, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    const tbody = await tr.json();
    assert.equal(tr.status, 200, JSON.stringify(tbody));
    assert.ok(tbody.access_token);
    const r = await fetch(`${gh.gateway}/payments/charges`, {
      headers: { authorization: `Bearer ${tbody.access_token}` },
    });
    const body = await r.text();
    assert.equal(r.status, 200, body);
    assert.match(body, /"path":"\/charges"/);
    const none = await fetch(`${gh.gateway}/payments/charges`);
    assert.equal(none.status, 401);
  });

  test('rotate the secret, then delete the client with a confirmation step', async () => {
    await dev.getByRole('button', { name: 'Rotate secret' }).click();
    await dev.getByText('A new secret was issued').waitFor();
    const rotated = (await dev.locator('#client-secret').innerText()).trim();
    assert.notEqual(rotated, client.secret);
    await dev.goto(`${gh.portal}/clients`);
    await shot(dev, '25-portal-clients');
    await dev.getByRole('link', { name: 'my-app' }).click();
    await dev.getByRole('link', { name: 'Delete' }).click();
    await dev.getByRole('heading', { name: 'Delete OAuth client' }).waitFor();
    await shot(dev, '26-portal-client-delete-confirm');
    await dev.getByRole('button', { name: 'Delete client' }).click();
    await dev.waitForURL(/\/clients$/);
    await dev.getByText('The OAuth client was deleted.').waitFor();
    await dev.getByRole('link', { name: 'Create first OAuth Client' }).waitFor();
  });

  test('pages fit a phone screen', async () => {
    await dev.setViewportSize({ width: 390, height: 844 });
    await dev.goto(`${gh.portal}/catalogue`);
    await shot(dev, '27-phone-portal-catalogue');
    const overflow = await dev.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the page is ${overflow}px wider than the phone`);
    await admin.setViewportSize({ width: 390, height: 844 });
    await admin.goto(`${gh.dashboard}/apis/payments`);
    await shot(admin, '28-phone-dashboard-api');
    const o2 = await admin.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(o2 <= 1, `the dashboard page is ${o2}px wider than the phone`);
    await admin.goto(`${gh.dashboard}/developers`);
    await shot(admin, '29-phone-dashboard-developers');
  });

  test('no page loads anything from another origin', async () => {
    const foreign = [];
    dev.on('request', (req) => {
      const u = new URL(req.url());
      if (u.hostname !== '127.0.0.1') foreign.push(req.url());
    });
    await dev.goto(`${gh.portal}/catalogue/payments/docs`);
    await dev.goto(`${gh.portal}/clients`);
    assert.deepEqual(foreign, []);
  });
});
