// The dashboard's administration pages in a browser: importing a Tyk configuration, flushing an
// API's cached keys, registration metadata in the DCR settings, deleting a developer, managing
// admins, sign-in throttling and the audit log that records all of it.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { shot, startBrowser, startGatehouse, startIdp, startUpstream, stopAll } from '../lib/harness.mjs';

const ADMIN = { email: 'root@example.com', password: 'root admin password' };
const OPS = { email: 'ops@example.com', password: 'ops admin password' };

let idp;
let gh;
let upstream;
let browser;
let page;

before(async () => {
  idp = await startIdp('e2e-admin-iat');
  upstream = await startUpstream();
  gh = await startGatehouse({ GATEHOUSE_ADMIN_EMAIL: ADMIN.email, GATEHOUSE_ADMIN_PASSWORD: ADMIN.password });
  browser = await startBrowser();
  page = await browser.newPage();
});

after(async () => {
  await stopAll();
});

const field = (label) => page.getByLabel(label, { exact: true });

async function signIn(who) {
  await page.goto(`${gh.dashboard}/login`);
  await field('Email').fill(who.email);
  await field('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

describe('dashboard administration in a browser', () => {
  test('the admin from the environment signs in', async () => {
    await signIn(ADMIN);
    await page.waitForURL(/\/apis$/);
  });

  test('import a Tyk configuration by pasting it', async () => {
    await page.getByRole('link', { name: 'Import from Tyk' }).click();
    await page.waitForURL(/\/import$/);
    await field('Tyk configuration (JSON)').fill('{"apis": [1');
    await page.getByRole('button', { name: 'Import' }).click();
    await page.locator('#err-document').waitFor();
    assert.match(await page.locator('#err-document').innerText(), /not valid JSON/);
    const tyk = {
      apis: [{
        name: 'Orders', api_id: 'orders', enable_jwt: true, jwt_signing_method: 'rsa',
        jwt_source: idp.jwks_uri, jwt_identity_base_field: 'sub', jwt_policy_field_name: 'pol',
        proxy: { listen_path: '/orders/', target_url: upstream, strip_listen_path: true },
      }],
      policies: { silver: { name: 'Silver', rate: 10, per: 60, quota_max: -1,
        access_rights: { orders: { api_id: 'orders', api_name: 'Orders', versions: ['Default'] } } } },
    };
    await field('Tyk configuration (JSON)').fill(JSON.stringify(tyk, null, 2));
    await page.getByRole('button', { name: 'Import' }).click();
    const report = page.locator('#import-report');
    await report.waitFor();
    assert.match(await report.innerText(), /2 imported, 0 failed/);
    await shot(page, 'admin-01-import-report');
    await page.goto(`${gh.dashboard}/apis`);
    await page.getByRole('link', { name: 'Orders' }).waitFor();
  });

  test('flush the cached JWKS of an API', async () => {
    await page.goto(`${gh.dashboard}/apis/orders`);
    await page.getByRole('button', { name: 'Flush JWKS cache' }).click();
    await page.getByText("Cached keys of 'orders' flushed.").waitFor();
    await shot(page, 'admin-02-jwks-flushed');
  });

  test('registration metadata: a mistake is shown next to the field, then saved', async () => {
    await page.goto(`${gh.dashboard}/portal-settings`);
    await page.getByRole('tab', { name: 'API Access' }).click();
    await field('Registration metadata (JSON)').fill('{"pol": ');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.locator('#err-dcr_registration_metadata').waitFor();
    assert.match(await page.locator('#err-dcr_registration_metadata').innerText(), /not valid JSON/);
    await field('Registration metadata (JSON)').fill('{"pol": "{policy_id}", "team": "{developer_id}"}');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByText('Portal settings saved.').waitFor();
    await page.getByRole('tab', { name: 'API Access' }).click();
    const saved = JSON.parse(await field('Registration metadata (JSON)').inputValue());
    assert.deepEqual(saved, { pol: '{policy_id}', team: '{developer_id}' });
    await shot(page, 'admin-03-registration-metadata');
  });

  test('delete a developer after a confirmation', async () => {
    await page.goto(`${gh.dashboard}/developers/new`);
    await field('Email').fill('leaving@example.com');
    await field('First name').fill('Lee');
    await field('Password').fill('developer password 2');
    await page.getByRole('button', { name: 'Add developer' }).click();
    await page.getByText('Developer leaving@example.com added.').waitFor();
    await page.goto(`${gh.dashboard}/developers`);
    await page.getByRole('link', { name: 'leaving@example.com' }).click();
    // Edit first: a bad email is shown next to its field, a good edit is saved.
    await field('Email').fill('not-an-email');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('#err-email').waitFor();
    await field('Email').fill('leaving@example.com');
    await field('First name').fill('Leeroy');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByText('Developer leaving@example.com saved.').waitFor();
    assert.equal(await field('First name').inputValue(), 'Leeroy');
    await page.getByRole('link', { name: 'Delete' }).click();
    await page.getByRole('heading', { name: 'Delete developer' }).waitFor();
    await page.getByText('Delete leaving@example.com?').waitFor();
    await shot(page, 'admin-04-developer-delete-confirm');
    await page.getByRole('button', { name: 'Delete developer' }).click();
    await page.waitForURL(/\/developers$/);
    await page.getByText('Developer leaving@example.com deleted.').waitFor();
    assert.equal(await page.getByRole('link', { name: 'leaving@example.com' }).count(), 0);
  });

  test('add an admin: password rules next to the field, then the new admin is listed', async () => {
    await page.goto(`${gh.dashboard}/admins`);
    await field('Email').fill(OPS.email);
    await field('Password').fill('qwertyuiop');
    await field('Repeat the password').fill('qwertyuiop');
    await page.getByRole('button', { name: 'Add admin' }).click();
    await page.locator('#err-password').waitFor();
    assert.match(await page.locator('#err-password').innerText(), /too common/);
    await field('Password').fill(OPS.password);
    await field('Repeat the password').fill(OPS.password);
    await page.getByRole('button', { name: 'Add admin' }).click();
    await page.getByText(`Admin ${OPS.email} added.`).waitFor();
    await shot(page, 'admin-05-admins');
  });

  test('sign-in is throttled after repeated wrong passwords', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/login$/);
    for (let i = 0; i < 5; i += 1) {
      await signIn({ email: OPS.email, password: `wrong password ${i}` });
      await page.locator('#err-password').waitFor();
    }
    await signIn(OPS);
    await page.locator('#err-password').waitFor();
    assert.match(await page.locator('#err-password').innerText(), /Too many failed sign-ins for this account/);
    await shot(page, 'admin-06-login-throttled');
  });

  test('remove the admin, and read the audit log', async () => {
    await signIn(ADMIN);
    await page.waitForURL(/\/apis$/);
    await page.goto(`${gh.dashboard}/admins`);
    await page.getByRole('row', { name: new RegExp(OPS.email) }).getByRole('link', { name: 'Remove' }).click();
    await page.getByRole('button', { name: 'Remove admin' }).click();
    await page.getByText(`Admin ${OPS.email} removed.`).waitFor();
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.waitForURL(/\/audit$/);
    const text = await page.locator('#audit').innerText();
    for (const action of ['import.tyk', 'jwks.flush', 'portal_settings.update', 'developer.delete',
      'developer.update', 'admin.create', 'admin.delete', 'admin.sign_in_failed', 'admin.sign_in', 'admin.sign_out']) {
      assert.ok(text.includes(action), `the audit log lacks ${action}:\n${text}`);
    }
    assert.match(text, new RegExp(`${ADMIN.email}\\s+admin\\.delete\\s+${OPS.email}`));
    assert.ok(!text.includes(OPS.password) && !text.includes(ADMIN.password));
    await shot(page, 'admin-07-audit-log');
  });
});
