-- 005_templates: stored templates of rendered files (issue 17). A template is a named object
-- with versions like a secret; its body may hold literal secrets, so each version's body is
-- sealed exactly like a value: under its own random data key with associated data
-- "secretd/tmpl-data/v1" (template id, version, name), the data key wrapped under keks(kek_id)
-- with associated data "secretd/tmpl-dkey/v1" (template id, version, kek id). head is a MAC
-- (MAC root subkey of secrets' heads, message "secretd/tmpl-head/v1") over (id, name, current,
-- the version set, the current version's kek id, size and keyed digests of its wrapped key and
-- ciphertext): a swapped, restored or edited row fails its check. Grants name a template as
-- "tmpl:NAME" in grants.secret (':' is no character of a secret name or pattern).
CREATE TABLE IF NOT EXISTS templates (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	name TEXT NOT NULL UNIQUE,
	current INTEGER NOT NULL DEFAULT 0 CHECK (current >= 0),
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	head BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS template_versions (
	template_id INTEGER NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
	version INTEGER NOT NULL CHECK (version >= 1),
	kek_id INTEGER NOT NULL REFERENCES keks (id),
	wrapped_key BLOB NOT NULL,
	ciphertext BLOB NOT NULL,
	size INTEGER NOT NULL CHECK (size >= 0),
	created INTEGER NOT NULL,
	PRIMARY KEY (template_id, version)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS template_versions_kek ON template_versions (kek_id);
-- (IF NOT EXISTS: the unit tests that rebuild an older store lower user_version and drop only
-- the columns of the migration they test; on a real older store these never exist.)
