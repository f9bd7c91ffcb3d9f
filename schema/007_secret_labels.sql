-- 007_secret_labels: labels on secrets (issue 16 item 8), docker/kubectl-style KEY=VALUE
-- metadata. Not secret and selecting nothing, but not forgeable by someone who only writes the
-- database file: a secret's whole label set is one row, its MAC (MAC root subkey 6, "sd_label")
-- over "secretd/labels/v1", the secret's id and name and the set's encoding (the labels column:
-- u64 count, then each key and value as u64 length and bytes, keys strictly ascending). An
-- edited, added or moved set fails its check; a deleted row (no labels) or an older copy of the
-- row is what the audit anchor covers for every row (docs/DESIGN.md, Store). No row: no labels.
CREATE TABLE IF NOT EXISTS secret_labels (
	secret_id INTEGER PRIMARY KEY REFERENCES secrets (id) ON DELETE CASCADE,
	labels BLOB NOT NULL,
	mac BLOB NOT NULL
);
