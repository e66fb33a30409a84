-- Gatehouse schema for PostgreSQL, version 4: dashboard sign-in sessions and the audit log of
-- admin actions. The same tables as migrations/sqlite/0004_admin.sql.

-- Dashboard sessions; only a SHA-256 of the cookie value is stored. Shared by every dashboard
-- node and kept over restarts.
CREATE TABLE admin_sessions (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    email       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX admin_sessions_email ON admin_sessions(email);

-- Who changed what, when. Never holds a secret.
CREATE TABLE audit_log (
    id      BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,      -- admin email, "admin-api-key", "cli" or "system"
    action  TEXT NOT NULL,      -- e.g. "api.update", "policy.delete", "admin.sign_in_failed"
    target  TEXT NOT NULL,      -- the id of the thing acted on ("" when none)
    detail  TEXT NOT NULL,      -- short JSON or text; no secrets
    source  TEXT NOT NULL       -- client address or "cli"
);
CREATE INDEX audit_log_at ON audit_log(at);
