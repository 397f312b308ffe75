-- Migration 11: attachment blobs (design note 0019). The body is in the row
-- (a file on one server is not on another), so the row and its body commit
-- together; it is ciphertext, stored out of line and uncompressed.
CREATE TABLE blobs (
    locator TEXT PRIMARY KEY,
    owner BIGINT NOT NULL REFERENCES accounts(id),
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    body BYTEA NOT NULL
);
ALTER TABLE blobs ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE INDEX blobs_owner ON blobs(owner);
CREATE INDEX blobs_expires ON blobs(expires_at);
