-- Migration 4: login challenges answered once across servers (design note
-- 0019). A row per correctly signed answer until its challenge expires; the
-- primary key on the challenge's tag refuses a second answer on any server.
CREATE TABLE used_challenges (
    tag BYTEA PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_challenges_account ON used_challenges(account_id, expires_at);
CREATE INDEX used_challenges_expires ON used_challenges(expires_at);
