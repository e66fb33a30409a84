-- Gatehouse schema, version 3: per-minute analytics. One row per minute, API, developer, OAuth
-- client and status class; gateways ADD their in-memory counters to it every few seconds, so rows
-- from several nodes and from before a restart sum up. Old rows are pruned after the retention.

CREATE TABLE analytics_minutes (
    minute          INTEGER NOT NULL,   -- unix seconds / 60
    api_id          TEXT NOT NULL,      -- '' when no API matched
    developer_id    TEXT NOT NULL,      -- '' when none
    client_id       TEXT NOT NULL,      -- '' when none
    status_class    INTEGER NOT NULL,   -- 1..5 for 1xx..5xx
    requests        INTEGER NOT NULL,
    bytes_in        INTEGER NOT NULL,
    bytes_out       INTEGER NOT NULL,
    latency_us_sum  INTEGER NOT NULL,   -- microseconds
    -- Requests per latency bucket, upper bounds in ms: 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500,
    -- 1000, 2500, 5000, 10000, 30000, then above.
    h00 INTEGER NOT NULL DEFAULT 0, h01 INTEGER NOT NULL DEFAULT 0, h02 INTEGER NOT NULL DEFAULT 0,
    h03 INTEGER NOT NULL DEFAULT 0, h04 INTEGER NOT NULL DEFAULT 0, h05 INTEGER NOT NULL DEFAULT 0,
    h06 INTEGER NOT NULL DEFAULT 0, h07 INTEGER NOT NULL DEFAULT 0, h08 INTEGER NOT NULL DEFAULT 0,
    h09 INTEGER NOT NULL DEFAULT 0, h10 INTEGER NOT NULL DEFAULT 0, h11 INTEGER NOT NULL DEFAULT 0,
    h12 INTEGER NOT NULL DEFAULT 0, h13 INTEGER NOT NULL DEFAULT 0, h14 INTEGER NOT NULL DEFAULT 0,
    h15 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, api_id, developer_id, client_id, status_class)
);
CREATE INDEX analytics_minutes_developer ON analytics_minutes (developer_id, minute);
