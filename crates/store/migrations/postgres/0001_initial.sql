-- Gatehouse schema for PostgreSQL, version 1: API definitions, policies, settings, quota counters.
-- The same tables as migrations/sqlite/0001_initial.sql, in PostgreSQL's dialect.
--
-- Documents are stored whole as JSON *text*, not JSONB: JSONB reorders object keys and drops
-- duplicates, while a Tyk definition must read back exactly as written (key order included).
-- Ids and other keys use the "C" collation so that ORDER BY sorts by bytes, as SQLite does,
-- whatever the database's locale. Constraints are named: the store maps a violation of one of
-- them to the conflict on the matching input field.

CREATE TABLE apis (
    api_id      TEXT COLLATE "C" NOT NULL,
    route_key   TEXT COLLATE "C" NOT NULL,  -- listen path without trailing slashes
    name        TEXT NOT NULL,
    doc         TEXT NOT NULL,              -- the Tyk Classic API definition, JSON
    created_at  BIGINT NOT NULL,            -- unix seconds
    updated_at  BIGINT NOT NULL,
    CONSTRAINT apis_pkey PRIMARY KEY (api_id),
    CONSTRAINT apis_route_key_key UNIQUE (route_key)
);

CREATE TABLE policies (
    id          TEXT COLLATE "C" NOT NULL,
    name        TEXT NOT NULL,
    doc         TEXT NOT NULL,              -- the Tyk policy, JSON
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT policies_pkey PRIMARY KEY (id)
);

-- Small key/value settings: the admin key hash, portal configuration.
CREATE TABLE settings (
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT settings_pkey PRIMARY KEY (key)
);

-- One row, bumped in the same transaction as every configuration change (which also sends
-- NOTIFY gatehouse_config); gateways poll it or listen. Configuration writes lock this row
-- first, which serialises them across all nodes sharing the database.
CREATE TABLE config_version (
    id          SMALLINT NOT NULL,
    version     BIGINT NOT NULL,
    CONSTRAINT config_version_pkey PRIMARY KEY (id),
    CONSTRAINT config_version_one_row CHECK (id = 1)
);
INSERT INTO config_version (id, version) VALUES (1, 1);

-- Quota counters of the local counter, flushed in batches so they survive restarts.
CREATE TABLE quota_counters (
    key           TEXT COLLATE "C" NOT NULL,
    used          BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,          -- unix seconds
    window_secs   BIGINT NOT NULL,
    CONSTRAINT quota_counters_pkey PRIMARY KEY (key)
);
