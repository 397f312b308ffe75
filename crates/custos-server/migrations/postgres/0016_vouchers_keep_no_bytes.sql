-- Migration 16: a voucher's bytes are no longer kept, and the account index
-- covers opened vouchers only (SQLite schema version 8; design note 0017).
-- A voucher that did not open can never open later (the check is
-- deterministic); one that opened is kept as its share, which holds
-- everything the service can read of it. The threshold step reads opened
-- vouchers only.
ALTER TABLE psi_vouchers DROP COLUMN voucher;
DROP INDEX psi_vouchers_account;
CREATE INDEX psi_vouchers_opened ON psi_vouchers(account, id) WHERE share IS NOT NULL;
