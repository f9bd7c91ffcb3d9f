-- 004_audit_count: how many identical events a record stands for. The audit batcher coalesces
-- identical events (same actor, pid, exe, action, secret, version, result) that arrive within
-- one flush window into one record; events refused while the audit could not be written are
-- recorded the same way. 1 for every record written before this migration. A record with a
-- count above 1 is MAC'd as "secretd/audit/v3" over the v2 fields (detail optional) plus the
-- count; one with count 1 keeps the v1/v2 message, so older records verify unchanged and
-- editing a count breaks the MAC.
ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);
