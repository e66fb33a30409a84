-- Gatehouse schema for PostgreSQL, version 3: per-minute analytics. One row per minute, API, developer, OAuth
-- client and status class; gateways ADD their in-memory counters to it every few seconds, so rows
-- from several nodes and from before a restart sum up. Old rows are pruned after the retention.

CREATE TABLE analytics_minutes (
    minute          BIGINT NOT NULL,   -- unix seconds / 60
    api_id          TEXT COLLATE "C" NOT NULL,      -- '' when no API matched
    developer_id    TEXT COLLATE "C" NOT NULL,      -- '' when none
    client_id       TEXT COLLATE "C" NOT NULL,      -- '' when none
    status_class    BIGINT NOT NULL,     -- 1..5 for 1xx..5xx
    requests        BIGINT NOT NULL,
    bytes_in        BIGINT NOT NULL,
    bytes_out       BIGINT NOT NULL,
    latency_us_sum  BIGINT NOT NULL,   -- microseconds
    -- Requests per latency bucket, upper bounds in ms: 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500,
    -- 1000, 2500, 5000, 10000, 30000, then above.
    h00 BIGINT NOT NULL DEFAULT 0, h01 BIGINT NOT NULL DEFAULT 0, h02 BIGINT NOT NULL DEFAULT 0,
    h03 BIGINT NOT NULL DEFAULT 0, h04 BIGINT NOT NULL DEFAULT 0, h05 BIGINT NOT NULL DEFAULT 0,
    h06 BIGINT NOT NULL DEFAULT 0, h07 BIGINT NOT NULL DEFAULT 0, h08 BIGINT NOT NULL DEFAULT 0,
    h09 BIGINT NOT NULL DEFAULT 0, h10 BIGINT NOT NULL DEFAULT 0, h11 BIGINT NOT NULL DEFAULT 0,
    h12 BIGINT NOT NULL DEFAULT 0, h13 BIGINT NOT NULL DEFAULT 0, h14 BIGINT NOT NULL DEFAULT 0,
    h15 BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT analytics_minutes_pkey PRIMARY KEY (minute, api_id, developer_id, client_id, status_class)
);
CREATE INDEX analytics_minutes_developer ON analytics_minutes (developer_id, minute);
