-- Migration 5: secrets every server of a deployment shares (design note
-- 0019). One row per purpose, drawn from the OS by the first server that
-- starts and read by every other one: `login_challenge` keys the stateless
-- login challenges, so a challenge issued by server A is answered on B.
CREATE TABLE server_secrets (
    purpose TEXT PRIMARY KEY,
    secret BYTEA NOT NULL
);
