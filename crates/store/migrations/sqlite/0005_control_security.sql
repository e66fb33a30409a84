-- Gatehouse schema, version 5: first-admin setup tokens and OAuth client slots.

-- One-time tokens of the first-admin setup link; only a SHA-256 of each is stored. Every
-- dashboard process that starts while no admin exists adds its own; all are deleted when the
-- first admin is created.
CREATE TABLE setup_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    created_at  INTEGER NOT NULL
);

-- A developer's OAuth client being registered at the IdP holds a slot here from before the IdP
-- call until the client is stored (or the call failed), so max_clients_per_developer holds under
-- parallel creations on every node. Slots of a crashed process expire.
CREATE TABLE client_slots (
    slot_id       TEXT PRIMARY KEY NOT NULL,
    developer_id  TEXT NOT NULL,
    expires_at    INTEGER NOT NULL
);
CREATE INDEX client_slots_developer ON client_slots(developer_id);
