-- Custos delivery service on PostgreSQL, migration 1: accounts, devices,
-- sessions and KeyPackages (design note 0019, step 2). Times are ms on the
-- service's clock; keys and tokens are raw bytes.
CREATE TABLE accounts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    identity_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
-- One device per account for now; mailboxes, sessions and routing are keyed
-- by device so that more can be added.
CREATE TABLE devices (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    created_at BIGINT NOT NULL
);
CREATE INDEX devices_account ON devices(account_id);
-- Only the SHA-256 of a session token is stored.
CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    device_id BIGINT NOT NULL REFERENCES devices(id),
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions(expires_at);
CREATE TABLE key_packages (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    last_resort BOOLEAN NOT NULL,
    data BYTEA NOT NULL
);
CREATE INDEX key_packages_account ON key_packages(account_id, last_resort, id);
-- At most one last-resort package per account, whichever server stores it.
CREATE UNIQUE INDEX key_packages_one_last_resort ON key_packages(account_id) WHERE last_resort;
