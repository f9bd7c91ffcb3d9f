-- 008_cluster_gens: replays of removed or older rows in cluster mode (issue #18). An etcd
-- writer without the root key cannot forge a row, but could put back an old one whose MAC is
-- still good: a revoked grant, an older form of a grant or of a schedule, a deleted secret.
-- grant_gens: a grant's generation, per (secret, selector): each write of a grant (add or
-- replace) takes one above the one held, and the grant MAC covers it ("secretd/grant/v2" when
-- gen > 0; grants from before this migration have no row here: gen 0, their v1 MAC). The row
-- stays when the grant is revoked: an imported grant row must be newer than it.
-- secrets_gone: the ids of secrets this store deleted (kept by a trigger): an imported secret
-- with such an id is a replay.
-- life_gens: a secret's lifecycle generation (expiry and schedule), one above the last at every
-- change of its lifecycle (lifecycle.c, also when the row is removed): a cluster's secret rows
-- carry the lifecycle with its generation under a lifecycle MAC, and an import whose lifecycle
-- is older than the one held is refused (a replayed schedule or expiry).
-- All three only grow with removals (a row each); an undo of a change etcd refused puts them
-- back as they were (xrows.c). Re-runnable (IF NOT EXISTS), like 005-007.
CREATE TABLE IF NOT EXISTS grant_gens (
	secret TEXT NOT NULL,
	selector TEXT NOT NULL,
	gen INTEGER NOT NULL CHECK (gen >= 0),
	PRIMARY KEY (secret, selector)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS secrets_gone (id INTEGER PRIMARY KEY);
CREATE TRIGGER IF NOT EXISTS secrets_gone_del AFTER DELETE ON secrets BEGIN
	INSERT OR IGNORE INTO secrets_gone (id) VALUES (old.id);
END;
CREATE TABLE IF NOT EXISTS life_gens (secret_id INTEGER PRIMARY KEY, gen INTEGER NOT NULL);
