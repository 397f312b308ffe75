-- Migration 10: reports, their refusals, moderators' decisions and
-- suspensions (design note 0019, moderation). A decision locks its report's
-- row, so decisions on one report are recorded one after the other on
-- whichever server; a suspension is read by sends inside their batch's
-- transaction, so it takes effect on every server once committed.
CREATE TABLE reports (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at BIGINT NOT NULL,
    reporter TEXT NOT NULL,
    conversation BYTEA NOT NULL,
    sender TEXT NOT NULL,
    server_time BIGINT NOT NULL,
    reason TEXT NOT NULL,
    report BYTEA NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX reports_status ON reports(status, id);
-- A reporter's earlier report of the same message (one report per message).
CREATE INDEX reports_reporter ON reports(reporter, server_time);
CREATE TABLE report_refusals (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at BIGINT NOT NULL,
    reporter TEXT NOT NULL,
    code TEXT NOT NULL
);
CREATE TABLE moderation_actions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report_id BIGINT NOT NULL REFERENCES reports(id),
    moderator TEXT NOT NULL,
    action TEXT NOT NULL,
    note TEXT NOT NULL,
    suspended_until BIGINT,
    taken_at BIGINT NOT NULL
);
CREATE INDEX moderation_actions_report ON moderation_actions(report_id, id);
-- One row per suspended account name; `until` NULL means permanent.
CREATE TABLE suspensions (
    account TEXT PRIMARY KEY,
    until BIGINT,
    report_id BIGINT NOT NULL REFERENCES reports(id),
    since BIGINT NOT NULL
);
