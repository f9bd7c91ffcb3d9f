-- 008_cluster_gens: replays of removed or older rows in cluster mode (issue #18). An etcd
-- writer without the root key cannot forge a row, but could put back an old one whose MAC is
-- still good: a revoked grant, an older form of a grant, a deleted secret.
-- grants.gen: each write of a grant (add or replace) takes a generation one above the highest
-- this store has held for its (secret, selector); the grant MAC covers it ("secretd/grant/v2"
-- when gen > 0; rows from before this migration keep gen 0 and their v1 MAC).
-- grant_gens: the highest generation held per (secret, selector), live or revoked (kept by the
-- triggers below on every insert, update and delete): an imported grant row must be newer.
-- secrets_gone: the ids of secrets this store deleted (kept by a trigger): an imported secret
-- with such an id is a replay. Both only grow with removals (a row each); an undo of a change
-- etcd refused puts them back as they were (xrows.c).
ALTER TABLE grants ADD COLUMN gen INTEGER NOT NULL DEFAULT 0 CHECK (gen >= 0);
CREATE TABLE IF NOT EXISTS grant_gens (
	secret TEXT NOT NULL,
	selector TEXT NOT NULL,
	gen INTEGER NOT NULL,
	PRIMARY KEY (secret, selector)
) WITHOUT ROWID;
INSERT OR IGNORE INTO grant_gens (secret, selector, gen) SELECT secret, selector, gen FROM grants;
CREATE TRIGGER IF NOT EXISTS grants_gen_ins AFTER INSERT ON grants BEGIN
	INSERT INTO grant_gens (secret, selector, gen) VALUES (new.secret, new.selector, new.gen)
	ON CONFLICT (secret, selector) DO UPDATE SET gen = max(gen, excluded.gen);
END;
CREATE TRIGGER IF NOT EXISTS grants_gen_upd AFTER UPDATE ON grants BEGIN
	INSERT INTO grant_gens (secret, selector, gen) VALUES (new.secret, new.selector, new.gen)
	ON CONFLICT (secret, selector) DO UPDATE SET gen = max(gen, excluded.gen);
END;
CREATE TRIGGER IF NOT EXISTS grants_gen_del AFTER DELETE ON grants BEGIN
	INSERT INTO grant_gens (secret, selector, gen) VALUES (old.secret, old.selector, old.gen)
	ON CONFLICT (secret, selector) DO UPDATE SET gen = max(gen, excluded.gen);
END;
CREATE TABLE IF NOT EXISTS secrets_gone (id INTEGER PRIMARY KEY);
CREATE TRIGGER IF NOT EXISTS secrets_gone_del AFTER DELETE ON secrets BEGIN
	INSERT OR IGNORE INTO secrets_gone (id) VALUES (old.id);
END;
-- life_gens: a secret's lifecycle generation (expiry and schedule), one above the last at every
-- change of its lifecycle row (lifecycle.c, also when the row is removed): a cluster's secret
-- rows carry the lifecycle with its generation under a lifecycle MAC, and an import whose
-- lifecycle is older than the one held is refused (a replayed schedule or expiry).
CREATE TABLE IF NOT EXISTS life_gens (secret_id INTEGER PRIMARY KEY, gen INTEGER NOT NULL);
