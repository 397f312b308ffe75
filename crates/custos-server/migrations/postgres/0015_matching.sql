-- Migration 15: known-content detection (design notes 0017, 0019, 0020),
-- the tables of SQLite's schema version 7 for several servers on one
-- database, plus what those servers must share to act as one.
--
-- Every voucher is kept with its account and blob; `share` is the
-- outer-opened share (NULL when the voucher did not open), what the service
-- learns below the threshold. A voucher accepted by any server counts
-- toward its account's threshold on every server.
CREATE TABLE psi_vouchers (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account BIGINT NOT NULL,
    locator TEXT NOT NULL UNIQUE,
    received_at BIGINT NOT NULL,
    voucher BYTEA NOT NULL,
    share BYTEA
);
CREATE INDEX psi_vouchers_account ON psi_vouchers(account, id);
-- The inner key of each account past the threshold.
CREATE TABLE psi_accounts (
    account BIGINT PRIMARY KEY,
    inner_key BYTEA NOT NULL,
    reached_at BIGINT NOT NULL
);
-- The review queue.
CREATE TABLE psi_cases (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account BIGINT NOT NULL,
    opened_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    decided_at BIGINT,
    moderator TEXT,
    note TEXT
);
-- At most one pending case per account, whichever servers open it at once.
CREATE UNIQUE INDEX psi_cases_one_pending ON psi_cases(account) WHERE status = 'pending';
CREATE TABLE psi_matches (
    voucher BIGINT PRIMARY KEY,
    case_id BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    derivative BYTEA NOT NULL
);
CREATE INDEX psi_matches_case ON psi_matches(case_id, voucher);
-- Per account, the last reconstruction attempt by any server: its time
-- (ms, service clock) and how many opened shares it had. An attempt is
-- claimed under this row's lock, so two servers never try one account at
-- once, an account is tried at most once a period, and only when a share
-- arrived since its last attempt.
CREATE TABLE psi_attempts (
    account BIGINT PRIMARY KEY,
    last_at BIGINT,
    last_shares BIGINT NOT NULL
);
-- The last matching figures (statement kind 15) logged by any server. A
-- server logs while it holds this row's lock and records what it logged
-- before releasing it: one server logs at a time, and each logs totals read
-- after the previous one's, so the logged figures never go backwards;
-- `as_of` (Unix seconds) is the last statement's, which the next never
-- precedes, however the servers' clocks differ.
CREATE TABLE psi_figures_logged (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    accounts_matched BIGINT NOT NULL,
    cases_opened BIGINT NOT NULL,
    cases_confirmed BIGINT NOT NULL,
    cases_dismissed BIGINT NOT NULL,
    as_of BIGINT NOT NULL
);
INSERT INTO psi_figures_logged VALUES (1, 0, 0, 0, 0, 0);
