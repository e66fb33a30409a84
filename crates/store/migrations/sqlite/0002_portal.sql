-- Gatehouse schema, version 2: the developer portal and Dynamic Client Registration.

CREATE TABLE catalogue (
    id          TEXT PRIMARY KEY NOT NULL,
    doc         TEXT NOT NULL,          -- the catalogue entry, JSON (initial access token sealed)
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE developers (
    id             TEXT PRIMARY KEY NOT NULL,
    email          TEXT NOT NULL UNIQUE,   -- normalised (lower case)
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    password_hash  TEXT NOT NULL,          -- argon2id PHC string
    inactive       INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

-- Portal sign-in sessions; only a SHA-256 of the cookie value is stored.
CREATE TABLE portal_sessions (
    token_hash    TEXT PRIMARY KEY NOT NULL,
    developer_id  TEXT NOT NULL REFERENCES developers(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX portal_sessions_developer ON portal_sessions(developer_id);

-- OAuth clients registered at the IdP through the portal. A deleted client stays as a tombstone
-- (deleted_at set, credentials wiped) so the gateway refuses its tokens.
CREATE TABLE oauth_clients (
    client_id        TEXT PRIMARY KEY NOT NULL,
    developer_id     TEXT NOT NULL,
    doc              TEXT NOT NULL,      -- name, catalogue ids, policy ids, provider, endpoints, JSON
    secret_sealed    TEXT,               -- client secret, encrypted
    rat_sealed       TEXT,               -- registration access token, encrypted
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    deleted_at       INTEGER
);
CREATE INDEX oauth_clients_developer ON oauth_clients(developer_id);
