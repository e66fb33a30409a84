-- Gatehouse schema, version 1: API definitions, policies, settings, quota counters.
-- Documents are stored whole as JSON text (a Tyk definition round-trips); the columns next to
-- them are the ones Gatehouse queries or must keep unique.

CREATE TABLE apis (
    api_id      TEXT PRIMARY KEY NOT NULL,
    route_key   TEXT NOT NULL UNIQUE,   -- listen path without trailing slashes
    name        TEXT NOT NULL,
    doc         TEXT NOT NULL,          -- the Tyk Classic API definition, JSON
    created_at  INTEGER NOT NULL,       -- unix seconds
    updated_at  INTEGER NOT NULL
);

CREATE TABLE policies (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    doc         TEXT NOT NULL,          -- the Tyk policy, JSON
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Small key/value settings: the admin key hash, and later portal configuration.
CREATE TABLE settings (
    key         TEXT PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Bumped in the same transaction as every configuration change; gateways poll it.
CREATE TABLE config_version (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    version     INTEGER NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 1);

-- Quota counters of the local (single-node) counter, flushed in batches so they survive restarts.
CREATE TABLE quota_counters (
    key           TEXT PRIMARY KEY NOT NULL,
    used          INTEGER NOT NULL,
    window_start  INTEGER NOT NULL,     -- unix seconds
    window_secs   INTEGER NOT NULL
);
