-- Migration 6: storage held per mailbox and per sender, for the quotas
-- (design note 0019). Changed by every transaction that stores, acks or
-- expires items, at its end and in key order (no foreign keys: a check of
-- one would take a lock out of that order). Rows appear on first use.
CREATE TABLE device_usage (
    device_id BIGINT PRIMARY KEY,
    items BIGINT NOT NULL,
    bytes BIGINT NOT NULL
);
CREATE TABLE sender_usage (
    sender TEXT PRIMARY KEY,
    items BIGINT NOT NULL,
    bytes BIGINT NOT NULL
);
