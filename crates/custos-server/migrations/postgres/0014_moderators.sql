-- Migration 14: the moderators of a PostgreSQL deployment (design note
-- 0019, moderation). One list for every server, where SQLite keeps the
-- `moderators` file of its one data directory. A moderator is an account
-- name bound to the identity key it had when it was added: a name
-- registered again with another key is no moderator.
CREATE TABLE moderators (
    name TEXT PRIMARY KEY,
    identity_key BYTEA NOT NULL,
    added_at BIGINT NOT NULL
);
