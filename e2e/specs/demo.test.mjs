// `gatehouse demo` followed in a browser the way its output tells a newcomer to: sign in to the
// portal as the demo developer, create an OAuth client with the wizard, get a token from the
// development IdP and call the demo API through the gateway; and sign in to the dashboard with
// the printed admin credentials.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { shot, startBrowser, startDemo, stopAll } from '../lib/harness.mjs';

let demo;
let browser;
let page;
const client = {};

before(async () => {
  demo = await startDemo();
  browser = await startBrowser();
  page = await browser.newPage();
});

after(async () => {
  await stopAll();
});

describe('gatehouse demo in a browser', () => {
  test('it prints the URLs, the credentials and the next steps', () => {
    assert.match(demo.text, /NOT for production/);
    assert.match(demo.text, /In a browser: open the portal/);
    assert.match(demo.text, /Next three steps|three steps from a shell/);
    assert.match(demo.gateway, /^http:\/\/127\.0\.0\.1:\d+$/);
  });

  test('the demo developer creates an OAuth client in the portal', async () => {
    await page.goto(`${demo.portal}/login`);
    await page.getByLabel('Email', { exact: true }).fill(demo.developer.email);
    await page.getByLabel('Password', { exact: true }).fill(demo.developer.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/catalogue$/);
    await page.getByRole('link', { name: 'Demo API' }).waitFor();
    await shot(page, 'demo-01-portal-catalogue');
    await page.goto(`${demo.portal}/clients`);
    await page.getByRole('link', { name: 'Create first OAuth Client' }).click();
    await page.getByLabel('Demo API').check();
    await page.getByRole('button', { name: 'Save and continue' }).click();
    await page.getByLabel('Client name', { exact: true }).fill('my-first-app');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.waitForURL(/\/clients\/[^/]+$/);
    await page.getByText('Your OAuth client was created').waitFor();
    client.id = (await page.locator('#client-id').innerText()).trim();
    client.secret = (await page.locator('#client-secret').innerText()).trim();
    client.tokenEndpoint = (await page.locator('#token-endpoint').innerText()).trim();
    assert.ok(client.id && client.secret);
    assert.match(client.tokenEndpoint, /^http:\/\/127\.0\.0\.1:\d+\//);
    await shot(page, 'demo-02-portal-client-created');
  });

  test('the token from the development IdP opens the demo API through the gateway', async () => {
    const basic = Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString('base64');
    const tr = await fetch(client.tokenEndpoint, {
      method: 'POST',
      headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    const tbody = await tr.json();
    assert.equal(tr.status, 200, JSON.stringify(tbody));
    const r = await fetch(`${demo.gateway}/demo/hello`, {
      headers: { authorization: `Bearer ${tbody.access_token}` },
    });
    const body = await r.text();
    assert.equal(r.status, 200, body);
    const none = await fetch(`${demo.gateway}/demo/hello`);
    assert.equal(none.status, 401);
  });

  test('the printed dashboard admin signs in and sees the demo API', async () => {
    await page.goto(`${demo.dashboard}/login`);
    await page.getByLabel('Email', { exact: true }).fill(demo.admin.email);
    await page.getByLabel('Password', { exact: true }).fill(demo.admin.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/apis$/);
    await page.getByRole('link', { name: 'Demo API' }).waitFor();
    await shot(page, 'demo-03-dashboard-apis');
  });
});
