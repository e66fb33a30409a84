// TEST-ONLY fixture code: the IdP's signing keys (one RSA for RS256, one EC P-256 for ES256),
// persisted as private JWKs in <state-dir>/keys.json, plus a small JWS signer built on node:crypto
// for the /__test/sign control endpoint.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

function newKid(prefix) {
  return `${prefix}-${crypto.randomBytes(12).toString('base64url')}`;
}

export function generateKey(kind) {
  if (kind === 'RSA') {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    return { ...privateKey.export({ format: 'jwk' }), kid: newKid('rs'), use: 'sig', alg: 'RS256' };
  }
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid: newKid('ec'), use: 'sig', alg: 'ES256' };
}

export class KeyRing {
  #file;

  keys; // private JWKs, the current signing keys first

  constructor(stateDir) {
    this.#file = path.join(stateDir, 'keys.json');
    if (fs.existsSync(this.#file)) {
      this.keys = JSON.parse(fs.readFileSync(this.#file, 'utf8')).keys;
    } else {
      this.keys = [generateKey('RSA'), generateKey('EC')];
      this.#save();
    }
  }

  #save() {
    const tmp = `${this.#file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify({ keys: this.keys }), { mode: 0o600 });
    fs.renameSync(tmp, this.#file);
  }

  // New RSA and EC keys, published first; the old ones stay published (after them) if keepOld.
  rotate(keepOld) {
    const fresh = [generateKey('RSA'), generateKey('EC')];
    this.keys = keepOld ? [...fresh, ...this.keys] : fresh;
    this.#save();
    return fresh.map((k) => k.kid);
  }

  current(alg) {
    return this.keys.find((k) => k.alg === alg);
  }

  kids() {
    return this.keys.map((k) => k.kid);
  }

  jwks() {
    return { keys: structuredClone(this.keys) };
  }
}

const b64 = (buf) => Buffer.from(buf).toString('base64url');

// A key that is never published: to make tokens whose signature cannot verify against the JWKS.
const foreign = { RS256: null, PS256: null, ES256: null };
function foreignKey(alg) {
  const kind = alg === 'ES256' ? 'EC' : 'RSA';
  const slot = alg === 'ES256' ? 'ES256' : 'RS256';
  foreign[slot] ||= generateKey(kind);
  return foreign[slot];
}

// Signs `claims` as a compact JWS. `header` fields override the defaults; a field set to null is
// removed (e.g. {"kid": null} makes a token without kid).
export function signJws(ring, { claims, alg = 'RS256', header = {}, secret, foreignKey: useForeign }) {
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
    throw new Error('claims must be a JSON object');
  }
  let jwk;
  if (alg === 'RS256' || alg === 'PS256') {
    jwk = useForeign ? foreignKey(alg) : ring.current('RS256');
  } else if (alg === 'ES256') {
    jwk = useForeign ? foreignKey(alg) : ring.current('ES256');
  } else if (alg === 'HS256') {
    if (typeof secret !== 'string') throw new Error('HS256 needs "secret" (a string)');
  } else if (alg !== 'none') {
    throw new Error(`unsupported alg ${alg} (RS256, PS256, ES256, HS256, none)`);
  }

  const hdr = { alg, typ: 'JWT', ...(jwk ? { kid: jwk.kid } : {}), ...header };
  for (const [k, v] of Object.entries(hdr)) {
    if (v === null) delete hdr[k];
  }
  const input = `${b64(JSON.stringify(hdr))}.${b64(JSON.stringify(claims))}`;
  const data = Buffer.from(input);
  let sig;
  if (alg === 'none') {
    sig = Buffer.alloc(0);
  } else if (alg === 'HS256') {
    sig = crypto.createHmac('sha256', secret).update(data).digest();
  } else {
    const key = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
    if (alg === 'RS256') {
      sig = crypto.sign('sha256', data, key);
    } else if (alg === 'PS256') {
      sig = crypto.sign('sha256', data, {
        key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32,
      });
    } else {
      sig = crypto.sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
    }
  }
  return `${input}.${b64(sig)}`;
}
