/* crypt: the key hierarchy (root key -> key-encryption-key generations -> per-version data keys),
 * AEAD (XChaCha20-Poly1305) and MACs, over libsodium. Every key and plaintext lives in
 * sodium_malloc memory. Functions return 0 or a negative errno unless said otherwise. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct secret; /* common/secret.h */

#define CRYPT_KEY_BYTES 32
#define CRYPT_MAC_BYTES 32
#define CRYPT_SALT_BYTES 16
/* Bytes a sealed box adds to its plaintext (nonce + tag). */
#define CRYPT_SEAL_OVERHEAD (24 + 16)

/* sodium_init, then PR_SET_DUMPABLE 0 and RLIMIT_CORE 0, then a probe that memory can be locked.
 * -ENOMEM when mlock is refused (the caller refuses to start). */
int crypt_harden_process(void);
/* Locked, wiped-on-free memory: thin wrappers over common/secret.h's secret_bytes_alloc and
 * secret_bytes_free (small buffers share locked slabs; the bytes start zeroed). For code that
 * keeps a bare pointer; new code should hold a secret. crypt_free(NULL) is a no-op; a
 * crypt_alloc'd pointer may also be freed with secret_bytes_free (and cleaned up with
 * _cleanup_secret_bytes_). */
void *crypt_alloc(size_t n);
void crypt_free(void *p);

/* mkdir -p: creates dir and missing parents with mode (existing ones are left as they are).
 * 0, or -ENOTDIR if dir exists but is not a directory, or -errno. */
int crypt_mkdir_p(const char *dir, mode_t mode);
/* Creates a new random 32-byte key file at path (O_EXCL, O_NOFOLLOW, mode 0400, fsync'd; missing
 * parent dirs created 0700). -EEXIST if it exists. */
int crypt_keyfile_create(const char *path);
/* Reads a 32-byte key file into *key (crypt_alloc'd; caller crypt_free's). -EINVAL on wrong size
 * or not a regular file, -EPERM if the file has any group or other permission bit or is not
 * owned by our effective uid, -ELOOP on a symlink. */
int crypt_keyfile_read(const char *path, uint8_t **key);
/* Derives a root key from a passphrase file (one trailing newline stripped) with Argon2id13.
 * salt/opslimit/memlimit are stored by the caller. *key crypt_alloc'd. The file is checked as a
 * key file is: -EINVAL when not a regular file, -EPERM with a group or other permission bit or
 * another owner, -ELOOP on a symlink; -EINVAL on an empty passphrase or limits out of
 * libsodium's range, -EFBIG over 4096 bytes. */
int crypt_passphrase_derive(const char *path, const uint8_t salt[CRYPT_SALT_BYTES],
                            uint64_t opslimit, size_t memlimit, uint8_t **key);

/* Reads a small credential file (an etcd password: one trailing newline stripped) into *out (a
 * secret of its bytes; the caller secret_unref's). The file is checked as a key file is: -EINVAL
 * when not a regular file, -EPERM with a group or other permission bit or another owner, -ELOOP
 * on a symlink; -EINVAL when empty, -EFBIG over max bytes. */
int crypt_private_read(const char *path, size_t max, struct secret **out);

/* Seals pt under key with associated data ad. out must hold ptlen + CRYPT_SEAL_OVERHEAD bytes
 * (random nonce first). */
int crypt_seal(const uint8_t key[CRYPT_KEY_BYTES], const uint8_t *ad, size_t adlen,
               const uint8_t *pt, size_t ptlen, uint8_t *out);
/* Opens a sealed box. out must hold ctlen - CRYPT_SEAL_OVERHEAD bytes (use crypt_alloc for
 * secrets). -EBADMSG on any tampering or wrong key; out is wiped then. */
int crypt_open(const uint8_t key[CRYPT_KEY_BYTES], const uint8_t *ad, size_t adlen,
               const uint8_t *ct, size_t ctlen, uint8_t *out);
/* Keyed BLAKE2b-256 MAC. crypt_mac_verify returns 0 or -EBADMSG (constant time). */
void crypt_mac(const uint8_t key[CRYPT_KEY_BYTES], const uint8_t *msg, size_t len,
               uint8_t out[CRYPT_MAC_BYTES]);
int crypt_mac_verify(const uint8_t key[CRYPT_KEY_BYTES], const uint8_t *msg, size_t len,
                     const uint8_t mac[CRYPT_MAC_BYTES]);
/* Derives a named subkey (e.g. for MACs) from a key with crypto_kdf. *sub crypt_alloc'd. */
int crypt_subkey(const uint8_t key[CRYPT_KEY_BYTES], uint64_t id, const char ctx[8], uint8_t **sub);
