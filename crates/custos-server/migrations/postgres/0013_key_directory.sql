-- Migration 13: the key directory (as SQLite's schema version 6): akd's
-- records (`custos_keydir::postgres::SCHEMA`, the same tables), keys queued
-- for the next epoch (inserted in the transaction that registers the
-- account, so a registered account is never missing from the directory),
-- and every published epoch's root with its log index once logged.
CREATE TABLE kd_records (
    key BYTEA PRIMARY KEY,
    record BYTEA NOT NULL
);
CREATE TABLE kd_values (
    label BYTEA NOT NULL,
    epoch BIGINT NOT NULL,
    version BIGINT NOT NULL,
    node_label BYTEA NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (label, epoch)
);
CREATE INDEX kd_values_version ON kd_values(label, version);
CREATE TABLE kd_pending (
    account TEXT PRIMARY KEY,
    identity_key BYTEA NOT NULL,
    queued_at BIGINT NOT NULL
);
CREATE INDEX kd_pending_queued ON kd_pending(queued_at, account);
CREATE TABLE kd_epochs (
    epoch BIGINT PRIMARY KEY,
    root_hash BYTEA NOT NULL,
    changes BIGINT NOT NULL,
    published_at BIGINT NOT NULL,
    log_index BIGINT
);
