-- 001_init: the whole store. Applied in one transaction by store_init; PRAGMA user_version is set
-- by the C code after the script succeeds. Nothing here is plaintext: values and keys are sealed
-- by broker/crypt.c, and the rows that decide what a container sees carry MACs.

-- Key/value settings: root.kind ('keyfile' or 'argon2id13'), kdf.salt, kdf.opslimit,
-- kdf.memlimit (8-byte big-endian), mac.root (the MAC root key sealed under the root key).
CREATE TABLE meta (
	key TEXT PRIMARY KEY NOT NULL,
	value BLOB NOT NULL
) WITHOUT ROWID;

-- Key-encryption-key generations, each 32 random bytes sealed under the root key with associated
-- data "kek|<id>". The newest id is the current one. AUTOINCREMENT: an id is never reused.
CREATE TABLE keks (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	wrapped BLOB NOT NULL,
	created INTEGER NOT NULL
);

-- One row per secret name. id is immutable and never reused (payload associated data binds it);
-- head is a MAC over (id, name, current, keep, version set, digest of the current version row).
CREATE TABLE secrets (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	name TEXT NOT NULL UNIQUE,
	current INTEGER NOT NULL DEFAULT 0 CHECK (current >= 0),
	keep INTEGER NOT NULL DEFAULT 10 CHECK (keep >= 1),
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	head BLOB NOT NULL
);

-- One row per kept version. wrapped_key: the version's data key sealed under keks(kek_id) with
-- associated data (secret id, version, kek id). ciphertext: the value sealed under the data key
-- with associated data (secret id, version, name). size: plaintext length.
CREATE TABLE versions (
	secret_id INTEGER NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
	version INTEGER NOT NULL CHECK (version >= 1),
	kek_id INTEGER NOT NULL REFERENCES keks (id),
	wrapped_key BLOB NOT NULL,
	ciphertext BLOB NOT NULL,
	size INTEGER NOT NULL CHECK (size >= 0),
	created INTEGER NOT NULL,
	PRIMARY KEY (secret_id, version)
) WITHOUT ROWID;
CREATE INDEX versions_kek ON versions (kek_id);

-- Grants: which containers (selector) see which secrets (name or pattern), and how. mac covers
-- every column with the row id.
CREATE TABLE grants (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	secret TEXT NOT NULL,
	selector TEXT NOT NULL,
	path TEXT,
	mode INTEGER NOT NULL CHECK (mode BETWEEN 0 AND 511),
	uid INTEGER NOT NULL,
	gid INTEGER NOT NULL,
	flags INTEGER NOT NULL DEFAULT 0,
	created INTEGER NOT NULL,
	mac BLOB NOT NULL,
	UNIQUE (secret, selector)
);
