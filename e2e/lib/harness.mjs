// Starts what a browser test needs, all on 127.0.0.1: the test IdP (Okta-shaped), an echo
// upstream, `gatehouse serve` (the built binary, a fresh data directory, free ports) and
// headless Chromium (Debian's, driven by playwright-core, with a fresh profile).
//
// Environment: GATEHOUSE_BIN (default target/debug/gatehouse), CHROMIUM (default
// /usr/bin/chromium), E2E_SCREENSHOTS (default e2e/screenshots).

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCREENSHOTS = process.env.E2E_SCREENSHOTS || path.join(ROOT, 'e2e', 'screenshots');

const children = [];

// If the test process ends without stopAll() (a crash, a closed pipe), end the servers anyway.
process.on('exit', () => {
  for (const c of children) {
    if (typeof c.pid === 'number' && c.exitCode === null) {
      try {
        c.kill('SIGTERM');
      } catch {
        // already gone
      }
    }
  }
});

function log(...args) {
  if (process.env.E2E_VERBOSE) console.error('[e2e]', ...args);
}

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Spawns a process whose output is kept for error messages; ended by stopAll(). */
function start(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  child.output = '';
  const keep = (d) => {
    child.output += d.toString();
    if (child.output.length > 200_000) child.output = child.output.slice(-100_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  children.push(child);
  return child;
}

/** The test IdP in Okta shape; resolves with its ready line ({issuer, jwks_uri, token_endpoint, …}). */
export async function startIdp(initialAccessToken) {
  const stateDir = tempDir('gh-e2e-idp-');
  const child = start(process.execPath, [
    path.join(ROOT, 'testing', 'idp', 'server.mjs'),
    '--shape', 'okta', '--port', '0', '--state-dir', stateDir,
    '--initial-access-token', initialAccessToken,
  ]);
  const ready = await new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        child.stdout.off('data', onData);
        try {
          resolve(JSON.parse(buf.slice(0, nl)));
        } catch (e) {
          reject(new Error(`the test IdP printed no JSON ready line: ${buf}`));
        }
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`the test IdP exited (${code}): ${child.output}`)));
  });
  log('idp ready', ready);
  return ready;
}

/** An upstream answering every request with 200 and a JSON echo of what it got. */
export async function startUpstream() {
  const server = http.createServer((req, res) => {
    const body = JSON.stringify({ ok: true, method: req.method, path: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  children.push({ kill: () => server.close(), exitCode: null, upstream: true });
  return `http://127.0.0.1:${server.address().port}`;
}

/** Polls `url` until it answers (any HTTP status), at most `tries` times. */
async function waitForHttp(url, child, tries = 300) {
  for (let i = 0; i < tries; i += 1) {
    if (child && child.exitCode !== null) {
      throw new Error(`gatehouse exited (${child.exitCode}):\n${child.output}`);
    }
    try {
      await fetch(url, { redirect: 'manual' });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} did not answer:\n${child ? child.output : ''}`);
}

/** `gatehouse serve` with a fresh data directory on free ports. */
export async function startGatehouse(extraEnv = {}) {
  const bin = process.env.GATEHOUSE_BIN || path.join(ROOT, 'target', 'debug', 'gatehouse');
  if (!fs.existsSync(bin)) throw new Error(`no gatehouse binary at ${bin}: run cargo build -p gatehouse (or scripts/e2e)`);
  const dataDir = tempDir('gh-e2e-data-');
  const [gw, dash, portal] = [await freePort(), await freePort(), await freePort()];
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME || dataDir,
    RUST_LOG: process.env.RUST_LOG || 'warn',
    GATEHOUSE_DATA_DIR: dataDir,
    GATEHOUSE_GATEWAY_LISTEN: `127.0.0.1:${gw}`,
    GATEHOUSE_DASHBOARD_LISTEN: `127.0.0.1:${dash}`,
    GATEHOUSE_PORTAL_LISTEN: `127.0.0.1:${portal}`,
    ...extraEnv,
  };
  // cwd = the data directory, so no gatehouse.toml of the repository is picked up.
  const child = start(bin, ['serve'], { cwd: dataDir, env });
  const urls = {
    gateway: `http://127.0.0.1:${gw}`,
    dashboard: `http://127.0.0.1:${dash}`,
    portal: `http://127.0.0.1:${portal}`,
  };
  await waitForHttp(`${urls.gateway}/hello`, child);
  await waitForHttp(`${urls.dashboard}/login`, child);
  await waitForHttp(`${urls.portal}/login`, child);
  // The console lines (setup link, then the URLs) come right after the listeners start.
  for (let i = 0; i < 100 && !/^Portal:/m.test(child.output); i += 1) {
    await new Promise((r) => setTimeout(r, 50));
  }
  log('gatehouse ready', urls);
  return { ...urls, dataDir, process: child, setupLink: setupLinkOf(child.output) };
}

/**
 * The one-time first-admin link that `gatehouse serve` prints on its console when no admin
 * exists ("First admin: open http://…/setup?token=…"), or undefined.
 */
export function setupLinkOf(output) {
  const m = output.match(/^First admin: open (http\S+)$/m);
  return m ? m[1] : undefined;
}

/**
 * `gatehouse demo` on free ports with a fresh data directory, as a newcomer runs it. Resolves
 * when it printed "Press Ctrl-C" with what it printed: the URLs and the credentials.
 */
export async function startDemo() {
  const bin = process.env.GATEHOUSE_BIN || path.join(ROOT, 'target', 'debug', 'gatehouse');
  if (!fs.existsSync(bin)) throw new Error(`no gatehouse binary at ${bin}: run cargo build -p gatehouse (or scripts/e2e)`);
  const dataDir = tempDir('gh-e2e-demo-');
  const [gw, dash, portal, idp, up] = [
    await freePort(), await freePort(), await freePort(), await freePort(), await freePort(),
  ];
  const child = start(bin, [
    'demo', '--data-dir', dataDir,
    '--gateway-listen', `127.0.0.1:${gw}`, '--dashboard-listen', `127.0.0.1:${dash}`,
    '--portal-listen', `127.0.0.1:${portal}`, '--idp-port', String(idp), '--upstream-port', String(up),
  ], { cwd: dataDir, env: { PATH: process.env.PATH, HOME: process.env.HOME || dataDir } });
  const text = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gatehouse demo printed no "Press Ctrl-C" in 60 s:\n${child.output}`)), 60_000);
    const check = () => {
      if (child.output.includes('Press Ctrl-C')) {
        clearTimeout(timer);
        resolve(child.output);
      }
    };
    child.stdout.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gatehouse demo exited (${code}):\n${child.output}`));
    });
  });
  const grab = (re, what) => {
    const m = text.match(re);
    if (!m) throw new Error(`gatehouse demo did not print ${what}:\n${text}`);
    return m.slice(1);
  };
  const [developerEmail, developerPassword] = grab(/Demo developer:\s+(\S+) \/ (\S+)/, 'the demo developer');
  const [adminEmail, adminPassword] = grab(/Dashboard admin:\s+(\S+) \/ (\S+)/, 'the dashboard admin');
  return {
    text,
    gateway: grab(/Gateway:\s+(http:\/\/\S+)/, 'the gateway URL')[0],
    dashboard: grab(/Dashboard:\s+(http:\/\/\S+)/, 'the dashboard URL')[0],
    portal: grab(/Portal:\s+(http:\/\/\S+)/, 'the portal URL')[0],
    developer: { email: developerEmail, password: developerPassword },
    admin: { email: adminEmail, password: adminPassword },
  };
}

/** Headless Chromium with a fresh profile directory. */
export async function startBrowser({ javaScript = true } = {}) {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(executablePath)) {
    throw new Error(`no Chromium at ${executablePath}: apt-get install -y chromium (or set CHROMIUM)`);
  }
  const profile = tempDir('gh-e2e-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
    viewport: { width: 1280, height: 900 },
    javaScriptEnabled: javaScript,
    timeout: 60_000,
  });
  context.setDefaultTimeout(20_000);
  children.push({ kill: () => context.close().catch(() => {}), exitCode: null });
  return context;
}

/** Saves a full-page screenshot as e2e/screenshots/<name>.png. */
export async function shot(page, name) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Stops everything started here (browser first, then servers). */
export async function stopAll() {
  for (const c of children.reverse()) {
    try {
      const r = c.kill('SIGTERM');
      if (r && typeof r.then === 'function') await r;
    } catch {
      // already gone
    }
  }
  children.length = 0;
}
