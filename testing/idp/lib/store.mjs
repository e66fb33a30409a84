// TEST-ONLY fixture code: a tiny persistent storage adapter for oidc-provider.
//
// Everything lives in one in-memory map per model name and is written, after every change, to one
// JSON file in the state directory (write to a temporary file, then rename). A restarted IdP with
// the same state directory therefore still knows its clients, registration access tokens and the
// fixture's own side tables. This is good for a test fixture only: no locking, no scale.

import * as fs from 'node:fs';
import * as path from 'node:path';

const nowSec = () => Math.floor(Date.now() / 1000);

export class FileStore {
  #file;

  #data; // { [model]: { [id]: { payload, exp } } }

  constructor(stateDir) {
    this.#file = path.join(stateDir, 'store.json');
    this.#data = {};
    if (fs.existsSync(this.#file)) {
      this.#data = JSON.parse(fs.readFileSync(this.#file, 'utf8'));
    }
  }

  #bucket(model) {
    this.#data[model] ||= {};
    return this.#data[model];
  }

  get(model, id) {
    const entry = this.#data[model]?.[id];
    if (!entry) return undefined;
    if (entry.exp && entry.exp <= nowSec()) {
      delete this.#data[model][id];
      this.save();
      return undefined;
    }
    return structuredClone(entry.payload);
  }

  set(model, id, payload, expiresIn) {
    const exp = typeof expiresIn === 'number' && expiresIn > 0 ? nowSec() + expiresIn : null;
    this.#bucket(model)[id] = { payload: structuredClone(payload), exp };
    this.save();
  }

  delete(model, id) {
    if (this.#data[model]?.[id]) {
      delete this.#data[model][id];
      this.save();
    }
  }

  // [id, payload] pairs of the live entries of one model.
  entries(model) {
    const now = nowSec();
    return Object.entries(this.#data[model] || {})
      .filter(([, e]) => !e.exp || e.exp > now)
      .map(([id, e]) => [id, structuredClone(e.payload)]);
  }

  save() {
    const now = nowSec();
    for (const bucket of Object.values(this.#data)) {
      for (const [id, e] of Object.entries(bucket)) {
        if (e.exp && e.exp <= now) delete bucket[id];
      }
    }
    const tmp = `${this.#file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(this.#data));
    fs.renameSync(tmp, this.#file);
  }
}

// An oidc-provider adapter class bound to one FileStore.
export function adapterFor(store) {
  return class FileAdapter {
    constructor(name) {
      this.name = name;
    }

    async upsert(id, payload, expiresIn) {
      store.set(this.name, id, payload, expiresIn);
    }

    async find(id) {
      return store.get(this.name, id);
    }

    async findByUserCode(userCode) {
      const hit = store.entries(this.name).find(([, p]) => p.userCode === userCode);
      return hit?.[1];
    }

    async findByUid(uid) {
      const hit = store.entries(this.name).find(([, p]) => p.uid === uid);
      return hit?.[1];
    }

    async consume(id) {
      const payload = store.get(this.name, id);
      if (payload) {
        payload.consumed = nowSec();
        const exp = typeof payload.exp === 'number' ? payload.exp - nowSec() : undefined;
        store.set(this.name, id, payload, exp);
      }
    }

    async destroy(id) {
      store.delete(this.name, id);
    }

    async revokeByGrantId(grantId) {
      for (const [id, p] of store.entries(this.name)) {
        if (p.grantId === grantId) store.delete(this.name, id);
      }
    }
  };
}
