// The pages work without JavaScript: Chromium with script disabled signs in (the first admin
// comes from GATEHOUSE_ADMIN_EMAIL / GATEHOUSE_ADMIN_PASSWORD), fills the DCR settings with
// the Discover button (a form post that renders the form again, filled), saves, adds a catalogue
// entry, and a developer signs up on the portal and walks the client wizard and its
// confirmation step, all with plain form posts.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { shot, startBrowser, startGatehouse, startIdp, startUpstream, stopAll } from '../lib/harness.mjs';

const IAT = 'nojs-initial-access-token';
const ADMIN = { email: 'ops@example.com', password: 'an admin password' };

let idp;
let gh;
let upstream;
let page;

before(async () => {
  idp = await startIdp(IAT);
  upstream = await startUpstream();
  gh = await startGatehouse({ GATEHOUSE_ADMIN_EMAIL: ADMIN.email, GATEHOUSE_ADMIN_PASSWORD: ADMIN.password });
  const browser = await startBrowser({ javaScript: false });
  page = await browser.newPage();
});

after(async () => {
  await stopAll();
});

const label = (text) => page.getByLabel(text, { exact: true });

describe('without JavaScript', () => {
  test('the first admin from the environment signs in; /setup is closed', async () => {
    await page.goto(`${gh.dashboard}/setup`);
    assert.match(page.url(), /\/login$/);
    await label('Email').fill(ADMIN.email);
    await label('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/apis$/);
  });

  test('global DCR settings: Discover fills the endpoints with a form post', async () => {
    await page.goto(`${gh.dashboard}/portal-settings`);
    // without script every tab panel is shown
    await page.getByRole('heading', { name: 'API Access' }).waitFor();
    await page.getByLabel('Developers may sign up themselves').check();
    await page.getByLabel('Dynamic Client Registration for portal APIs').check();
    await page.getByLabel('Providers').selectOption('okta');
    await page.getByLabel('Client Credentials').check();
    await label('Issuer (for discovery)').fill(idp.issuer);
    await page.getByRole('button', { name: 'Discover' }).click();
    await page.getByText(/Filled from/).waitFor();
    assert.equal(await label('Client Registration Endpoint').inputValue(), idp.registration_endpoint);
    assert.equal(await label('Token endpoint').inputValue(), idp.token_endpoint);
    // what was ticked before Discover is still ticked
    assert.ok(await page.getByLabel('Developers may sign up themselves').isChecked());
    await label('Initial Registration Access Token').fill(IAT);
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByText('Portal settings saved.').waitFor();
    assert.match(await page.locator('.token-state').innerText(), /^set$/);
    await shot(page, '30-nojs-portal-settings');
  });

  test('an API, a policy and a catalogue entry using the global settings', async () => {
    await page.goto(`${gh.dashboard}/apis/new`);
    await label('API name').fill('Orders');
    await label('API ID').fill('orders');
    await label('Listen path').fill('/orders/');
    await label('Target URL').fill(upstream);
    await page.getByLabel('JSON Web Token', { exact: true }).check();
    await label('JWKS URI / source').fill(idp.jwks_uri);
    await label('Identity source (jwt_identity_base_field)').fill('sub');
    await page.getByRole('button', { name: 'Create API' }).click();
    await page.waitForURL(/\/apis\/orders$/);

    await page.goto(`${gh.dashboard}/policies/new`);
    await label('Policy name').fill('Silver');
    await label('Policy ID').fill('silver');
    await page.getByLabel('Orders (orders)').check();
    await page.getByRole('button', { name: 'Create policy' }).click();
    await page.waitForURL(/\/policies\/silver$/);

    await page.goto(`${gh.dashboard}/catalogue/new`);
    await label('Public API name').fill('Orders API');
    await page.getByLabel('API', { exact: true }).selectOption('orders');
    await page.getByLabel('Policy', { exact: true }).selectOption('silver');
    await label('OpenAPI document (JSON or YAML)').fill('not: [valid');
    await page.getByRole('button', { name: 'Add to the catalogue' }).click();
    const err = page.locator('#err-openapi');
    await err.waitFor();
    assert.match(await err.innerText(), /not valid YAML/);
    assert.equal(await label('Public API name').inputValue(), 'Orders API');
    await shot(page, '31-nojs-catalogue-doc-error');
    await label('OpenAPI document (JSON or YAML)').fill('');
    await page.getByRole('button', { name: 'Add to the catalogue' }).click();
    await page.getByText("Catalogue entry 'Orders API' saved.").waitFor();
  });

  test('a developer signs up and creates and deletes a client', async () => {
    await page.goto(`${gh.portal}/signup`);
    await label('Email').fill('new.dev@example.com');
    await label('First name').fill('Nova');
    await label('Password').fill('a developer password');
    await page.getByRole('button', { name: 'Sign up' }).click();
    // The same notice for a new and a registered email; the developer signs in next.
    await page.waitForURL(/\/login\?signed_up=1$/);
    await page.getByText('If this email address was not registered yet').waitFor();
    await shot(page, '31b-nojs-signup-notice');
    await label('Email').fill('new.dev@example.com');
    await label('Password').fill('a developer password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/catalogue$/);
    await page.goto(`${gh.portal}/clients/new`);
    await page.getByLabel('Orders API').check();
    await page.getByRole('button', { name: 'Save and continue' }).click();
    await label('Client name').fill('cli');
    await label('Redirect URLs').fill('not a url');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.locator('#err-redirect_uris').waitFor();
    assert.equal(await label('Client name').inputValue(), 'cli');
    await shot(page, '32-nojs-wizard-error');
    await label('Redirect URLs').fill('https://app.example.com/cb; https://app.example.com/cb2');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.waitForURL(/\/clients\/[^/]+$/);
    const id = (await page.locator('#client-id').innerText()).trim();
    assert.ok(id);
    await page.getByRole('link', { name: 'Delete' }).click();
    await page.getByRole('button', { name: 'Delete client' }).click();
    await page.waitForURL(/\/clients$/);
    await page.getByText('The OAuth client was deleted.').waitFor();
  });

  test('unknown pages are HTML 404s; unknown API paths stay JSON', async () => {
    const r = await page.goto(`${gh.portal}/no-such-page`);
    assert.equal(r.status(), 404);
    assert.match(r.headers()['content-type'], /text\/html/);
    const api = await fetch(`${gh.dashboard}/api/no-such-thing`);
    assert.equal(api.status, 404);
    assert.match(api.headers.get('content-type'), /json/);
    const portalApi = await fetch(`${gh.portal}/api/catalogue`);
    assert.equal(portalApi.status, 401);
  });
});
