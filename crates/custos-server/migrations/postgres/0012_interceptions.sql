-- Migration 12: interceptions under logged warrants and the items they keep
-- (as SQLite's schema version 3; `crate::lawful`). Written by the writer's
-- holds in the batch that stores the items; read by the authority's fetch
-- on any server. Kept items are copies, apart from mailboxes, so acks and
-- the TTL never touch them; they go at keep_until.
CREATE TABLE interceptions (
    commitment BYTEA PRIMARY KEY,
    authority TEXT NOT NULL,
    authority_key BYTEA NOT NULL,
    first_day BIGINT NOT NULL,
    last_day BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    keep_until BIGINT NOT NULL,
    log_index BIGINT NOT NULL,
    started_at BIGINT NOT NULL
);
CREATE TABLE interception_targets (
    commitment BYTEA NOT NULL REFERENCES interceptions(commitment),
    conversation BYTEA NOT NULL,
    PRIMARY KEY (commitment, conversation)
);
-- The batch's lookup: is this conversation a target?
CREATE INDEX interception_targets_conversation ON interception_targets(conversation);
CREATE TABLE kept_items (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    commitment BYTEA NOT NULL REFERENCES interceptions(commitment),
    item_id BIGINT NOT NULL,
    kind SMALLINT NOT NULL,
    conversation BYTEA NOT NULL,
    day BIGINT NOT NULL,
    sender TEXT NOT NULL,
    sender_key BYTEA NOT NULL,
    server_time BIGINT NOT NULL,
    tag BYTEA NOT NULL,
    body BYTEA NOT NULL,
    keep_until BIGINT NOT NULL,
    UNIQUE (commitment, item_id)
);
ALTER TABLE kept_items ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE INDEX kept_items_until ON kept_items(keep_until);
-- Every chain announcement until the day after its chain's day ends, acked
-- or not: an interception that starts during a day can still open the
-- chains announced earlier that day.
CREATE TABLE recent_announcements (
    item_id BIGINT PRIMARY KEY,
    conversation BYTEA NOT NULL,
    day BIGINT NOT NULL,
    sender TEXT NOT NULL,
    server_time BIGINT NOT NULL,
    body BYTEA NOT NULL,
    keep_until BIGINT NOT NULL
);
CREATE INDEX recent_announcements_conversation ON recent_announcements(conversation, day);
CREATE INDEX recent_announcements_until ON recent_announcements(keep_until);
