-- Migration 3: items, per-device mailboxes and the replay set (design note
-- 0019, step 3). Each device has its own sequence counter, taken under the
-- device row's lock in the batch's transaction, so a device's mailbox rows
-- commit in seq order on whichever server stores them.
ALTER TABLE devices ADD COLUMN next_seq BIGINT NOT NULL DEFAULT 1;
-- Stored items (ciphertext only), deleted once every recipient device acked
-- or at expires_at.
CREATE TABLE items (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind SMALLINT NOT NULL,
    expires_at BIGINT NOT NULL,
    server_time BIGINT NOT NULL,
    conversation BYTEA NOT NULL,
    sender TEXT NOT NULL,
    tag BYTEA NOT NULL,
    body BYTEA NOT NULL
);
-- Ciphertext does not compress: store it out of line, uncompressed.
ALTER TABLE items ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE INDEX items_expires ON items(expires_at);
CREATE TABLE mailbox (
    device_id BIGINT NOT NULL REFERENCES devices(id),
    seq BIGINT NOT NULL,
    item_id BIGINT NOT NULL REFERENCES items(id),
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX mailbox_item ON mailbox(item_id);
-- SHA-256 of every accepted envelope and announcement until its TTL, to
-- refuse replays (on any server) even after the item was acked and deleted.
CREATE TABLE seen (
    hash BYTEA PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX seen_expires ON seen(expires_at);
