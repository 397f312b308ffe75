-- Migration 2: conversations, their members (routing only; the MLS roster is
-- the security boundary) and each conversation's public MLS state, written
-- together under the conversation row's lock (design note 0019).
CREATE TABLE conversations (
    id BYTEA PRIMARY KEY,
    epoch BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE members (
    conversation BYTEA NOT NULL REFERENCES conversations(id),
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    PRIMARY KEY (conversation, account_id)
);
CREATE INDEX members_account ON members(account_id);
CREATE TABLE group_states (
    conversation BYTEA PRIMARY KEY REFERENCES conversations(id),
    state BYTEA NOT NULL
);
