-- 002_rotation_audit: the audit trail and per-secret lifecycle (expiry, scheduled rotation).

-- Hash-chained audit records. seq is assigned by the store (last + 1, never reused); mac is a
-- keyed BLAKE2b (MAC root subkey "sd_audit") over seq, every field and prev_mac, the previous
-- record's mac (32 zero bytes for seq 1). meta 'audit.head' holds the last (seq, mac), so that a
-- truncated tail is detected too. Never a secret value.
CREATE TABLE audit (
	seq INTEGER PRIMARY KEY,
	time INTEGER NOT NULL,
	actor TEXT NOT NULL,
	pid INTEGER NOT NULL,
	exe TEXT NOT NULL,
	action TEXT NOT NULL,
	secret TEXT,
	version INTEGER NOT NULL,
	result TEXT NOT NULL,
	prev_mac BLOB NOT NULL,
	mac BLOB NOT NULL
);
CREATE INDEX audit_time ON audit (time);

-- Lifecycle of a secret: expiry and a rotation schedule. Deleted with the secret. mac (subkey
-- "sd_life_") covers every column with the secret's id and name, so a row copied to another
-- secret or edited fails its check.
CREATE TABLE lifecycle (
	secret_id INTEGER PRIMARY KEY REFERENCES secrets (id) ON DELETE CASCADE,
	expires INTEGER NOT NULL DEFAULT 0,  -- unix seconds; 0 = never
	every INTEGER NOT NULL DEFAULT 0,    -- seconds between rotations; 0 = no schedule
	next INTEGER NOT NULL DEFAULT 0,     -- next rotation, unix seconds
	length INTEGER NOT NULL DEFAULT 32,  -- generated value length
	charset TEXT NOT NULL DEFAULT 'alnum',
	exec TEXT,                           -- command run with the new value on stdin, or NULL
	mac BLOB NOT NULL
);
