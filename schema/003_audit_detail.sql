-- 003_audit_detail: what a record's action applied to beyond the secret's name, e.g. the
-- selector of a grant or a revoke ("selector=id:abc path=db mode=0400"). NULL for records
-- without one (and for every record written before this migration). A record with a detail is
-- MAC'd as "secretd/audit/v2" over the same fields plus the detail; one without it keeps the v1
-- message, so that older records verify unchanged and adding or removing a detail breaks the MAC.
ALTER TABLE audit ADD COLUMN detail TEXT;
