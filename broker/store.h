/* store: secrets, versions and grants in SQLite (WAL, synchronous=FULL, foreign keys), encrypted
 * with crypt. One store per state dir, held by one daemon (flock on STATE/lock).
 * All functions return 0 or a negative errno:
 *   -ENOENT no such secret/version/grant   -EINVAL bad name/selector/argument
 *   -EFBIG value larger than max_value     -EBADMSG integrity failure (tampered or swapped row,
 *   restored older row, wrong MAC)         -EKEYREJECTED wrong master key or passphrase
 *   -EBUSY another daemon holds the store  -EEXIST already exists (init, grant)
 *   -ENODATA state dir not initialised     -EIO sqlite error
 *   -EPROTO the database is newer than this binary
 * Strings and arrays handed out are malloc'd and freed with the matching *_free; secret values are
 * crypt_alloc'd and freed with store_value_free. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store store;

struct store_opts {
	const char *state_dir; /* holds secretd.db and lock */
	const char *key_file;  /* master key file; used when pass_file is NULL */
	const char *pass_file; /* passphrase file (Argon2id), or NULL */
	size_t max_value;      /* 0 = SECRETD_VALUE_MAX_DEFAULT */
};

/* Creates STATE/secretd.db (schema applied) and, with a key file, a new random key file; with a
 * passphrase, stores salt and limits. Refuses (-EEXIST) to overwrite a db or key file, and
 * (-EINVAL) a key file inside the state dir. */
int store_init(const struct store_opts *o);
/* Opens an initialised store: takes the lock, checks the master key (before changing anything),
 * applies pending migrations (each in a transaction), checks journal_mode=wal, synchronous=FULL,
 * foreign_keys=on. */
int store_open(store **out, const struct store_opts *o);
void store_close(store *s);

/* Stores a new version of name (creating the secret); prunes versions beyond the secret's keep.
 * *version_out (may be NULL) gets the new version number (1, 2, ...). */
int store_put(store *s, const char *name, const uint8_t *val, size_t len, uint64_t *version_out);
/* Decrypts a version (0 = current). *val crypt_alloc'd (free with store_value_free), *len its
 * length, *version_out (may be NULL) the version read. -EBADMSG if the row or head fails checks. */
int store_get(store *s, const char *name, uint64_t version, uint8_t **val, size_t *len,
	      uint64_t *version_out);
void store_value_free(uint8_t *val);

struct store_secret_info {
	char *name;
	uint64_t current;   /* current version */
	uint64_t nversions; /* versions kept */
	int64_t created;    /* unix seconds */
	int64_t updated;
};
/* All secrets, sorted by name, no values. */
int store_list(store *s, struct store_secret_info **out, size_t *n);
void store_list_free(struct store_secret_info *v, size_t n);
/* Only the names, sorted (for building views); *out is an array of n malloc'd strings. */
int store_names(store *s, char ***out, size_t *n);
void store_names_free(char **v, size_t n);

struct store_version_info {
	uint64_t version;
	uint64_t kek_id; /* key generation wrapping its data key */
	size_t size;     /* plaintext length */
	int64_t created;
	bool current;
};
int store_versions(store *s, const char *name, struct store_version_info **out, size_t *n);
void store_versions_free(struct store_version_info *v, size_t n);

/* Deletes a secret, all its versions, and grants naming it exactly. */
int store_delete(store *s, const char *name);

/* Master-key rotation: adds a key generation and re-wraps every data key under it; payloads are
 * untouched. *kek_id the new generation, *rewrapped the count (both may be NULL). */
int store_key_rotate(store *s, uint64_t *kek_id, uint64_t *rewrapped);

struct store_grant {
	int64_t id;
	char *secret;   /* name or pattern (names_check_pattern) */
	char *selector; /* policy_selector_check */
	char *path;     /* file path inside the mount, or NULL = the secret's name */
	uint32_t mode;  /* file mode bits, e.g. 0400 */
	int64_t uid;    /* -1 = the container's uid */
	int64_t gid;    /* -1 = the container's gid */
	uint32_t flags; /* STORE_GRANT_* */
	int64_t created;
};
#define STORE_GRANT_PREVIOUS 0x1 /* also show NAME.previous (the version before current) */

/* Adds a grant (MAC'd row). -EEXIST if (secret, selector) already granted: use replace=true to
 * update it. */
int store_grant_add(store *s, const struct store_grant *g, bool replace);
/* Removes the grant (secret, selector). -ENOENT if none. */
int store_grant_remove(store *s, const char *secret, const char *selector);
/* All grants ordered by id; each row's MAC is checked (-EBADMSG names no row, the caller logs). */
int store_grants(store *s, struct store_grant **out, size_t *n);
void store_grants_free(struct store_grant *v, size_t n);

/* A stat for /metrics: number of secrets. */
int store_count(store *s, uint64_t *secrets);
