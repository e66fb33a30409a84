-- Gatehouse schema for PostgreSQL, version 2: the developer portal and Dynamic Client
-- Registration. The same tables as migrations/sqlite/0002_portal.sql.

CREATE TABLE catalogue (
    id          TEXT COLLATE "C" NOT NULL,
    doc         TEXT NOT NULL,              -- the catalogue entry, JSON (initial access token sealed)
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT catalogue_pkey PRIMARY KEY (id)
);

CREATE TABLE developers (
    id             TEXT COLLATE "C" NOT NULL,
    email          TEXT COLLATE "C" NOT NULL,  -- normalised (lower case)
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    password_hash  TEXT NOT NULL,              -- argon2id PHC string
    inactive       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    CONSTRAINT developers_pkey PRIMARY KEY (id),
    CONSTRAINT developers_email_key UNIQUE (email)
);

-- Portal sign-in sessions; only a SHA-256 of the cookie value is stored.
CREATE TABLE portal_sessions (
    token_hash    TEXT COLLATE "C" NOT NULL,
    developer_id  TEXT COLLATE "C" NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    CONSTRAINT portal_sessions_pkey PRIMARY KEY (token_hash),
    CONSTRAINT portal_sessions_developer_fkey FOREIGN KEY (developer_id)
        REFERENCES developers (id) ON DELETE CASCADE
);
CREATE INDEX portal_sessions_developer ON portal_sessions (developer_id);
CREATE INDEX portal_sessions_expires ON portal_sessions (expires_at);

-- OAuth clients registered at the IdP through the portal. A deleted client stays as a tombstone
-- (deleted_at set, credentials wiped) so the gateway refuses its tokens.
CREATE TABLE oauth_clients (
    client_id        TEXT COLLATE "C" NOT NULL,
    developer_id     TEXT COLLATE "C" NOT NULL,
    doc              TEXT NOT NULL,      -- name, catalogue ids, policy ids, provider, endpoints, JSON
    secret_sealed    TEXT,               -- client secret, encrypted
    rat_sealed       TEXT,               -- registration access token, encrypted
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    deleted_at       BIGINT,
    CONSTRAINT oauth_clients_pkey PRIMARY KEY (client_id)
);
CREATE INDEX oauth_clients_developer ON oauth_clients (developer_id);
