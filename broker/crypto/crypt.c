#include "broker/crypto/crypt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "common/secret.h"

/* A passphrase longer than this is refused: it is read into locked memory in one piece. */
#define CRYPT_PASSPHRASE_MAX 4096

_Static_assert(CRYPT_SEAL_OVERHEAD == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES +
                                          crypto_aead_xchacha20poly1305_ietf_ABYTES,
               "seal overhead");
_Static_assert(CRYPT_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(CRYPT_KEY_BYTES == crypto_kdf_KEYBYTES, "kdf key size");
_Static_assert(CRYPT_SALT_BYTES == crypto_pwhash_SALTBYTES, "salt size");

/* sodium_init is idempotent and thread-safe; every entry point that needs libsodium state calls
 * it, so that tests and tools need not call crypt_harden_process first. */
static int crypt_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

int crypt_harden_process(void)
{
	int r = crypt_init();
	if (r < 0)
		return r;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -errno;
	struct rlimit rl = {0, 0};
	if (setrlimit(RLIMIT_CORE, &rl) < 0)
		return -errno;
	/* sodium_malloc ignores a failed mlock, so probe it ourselves on one page. */
	long pg = sysconf(_SC_PAGESIZE);
	if (pg <= 0)
		pg = 4096;
	void *probe = NULL;
	if (posix_memalign(&probe, (size_t)pg, (size_t)pg) != 0)
		return -ENOMEM;
	r = sodium_mlock(probe, (size_t)pg) < 0 ? -ENOMEM : 0;
	if (r == 0)
		sodium_munlock(probe, (size_t)pg);
	free(probe);
	return r;
}

void *crypt_alloc(size_t n)
{
	if (crypt_init() < 0)
		return NULL;
	return secret_bytes_alloc(n);
}

void crypt_free(void *p)
{
	secret_bytes_free(p);
}

/* mkdir -p with mode for every directory it creates; existing directories are left alone. */
int crypt_mkdir_p(const char *dir, mode_t mode)
{
	_cleanup_free_ char *p = strdup(dir);
	if (!p)
		return -ENOMEM;
	size_t len = strlen(p);
	while (len > 1 && p[len - 1] == '/')
		p[--len] = '\0';
	for (char *c = p + 1;; c++) {
		if (*c != '/' && *c != '\0')
			continue;
		char save = *c;
		*c = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*c = save;
		if (save == '\0')
			break;
	}
	struct stat st;
	if (stat(p, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Splits path into its directory (malloc'd) for fsync after creating an entry in it. */
static char *crypt_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int crypt_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int crypt_keyfile_create(const char *path)
{
	if (!path || !*path)
		return -EINVAL;
	int r = crypt_init();
	if (r < 0)
		return r;
	_cleanup_free_ char *dir = crypt_dirname(path);
	if (!dir)
		return -ENOMEM;
	r = crypt_mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	_cleanup_secret_bytes_ uint8_t *key = crypt_alloc(CRYPT_KEY_BYTES);
	if (!key)
		return -ENOMEM;
	randombytes_buf(key, CRYPT_KEY_BYTES);

	_cleanup_close_ int fd =
	    open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
	if (fd < 0)
		return -errno;
	/* umask may only remove bits, but be explicit about the final mode. */
	if (fchmod(fd, 0400) < 0 || (r = crypt_write_all(fd, key, CRYPT_KEY_BYTES)) < 0 ||
	    fsync(fd) < 0) {
		if (r == 0)
			r = -errno;
		unlink(path);
		return r;
	}
	/* The new name must be durable before anything is sealed under the key: a crash that
	 * loses the file after a store was created with it loses the store. */
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		r = -errno;
		unlink(path);
		return r;
	}
	return 0;
}

/* Opens a key or passphrase file (no symlink, no tty) for reading and requires a regular file
 * owned by our effective uid with no group or other permission bits: the fd (*st filled) or
 * -errno (-EINVAL for anything but a regular file, -EPERM for another owner or loose mode). */
static int crypt_open_private(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	int r = fstat(fd, st) < 0 ? -errno : S_ISREG(st->st_mode) ? 0 : -EINVAL;
	if (r == 0 && (st->st_uid != geteuid() || (st->st_mode & 0077)))
		r = -EPERM;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int crypt_keyfile_read(const char *path, uint8_t **key)
{
	if (!path || !key)
		return -EINVAL;
	*key = NULL;
	int r = crypt_init();
	if (r < 0)
		return r;
	struct stat st;
	_cleanup_close_ int fd = crypt_open_private(path, &st);
	if (fd < 0)
		return fd;
	if (st.st_size != CRYPT_KEY_BYTES)
		return -EINVAL;
	_cleanup_secret_bytes_ uint8_t *k = crypt_alloc(CRYPT_KEY_BYTES + 1);
	if (!k)
		return -ENOMEM;
	/* Read one byte more than expected: a file that grew after fstat is refused too. */
	size_t got = 0;
	r = fileio_read_upto(fd, k, CRYPT_KEY_BYTES + 1, &got);
	if (r < 0)
		return r;
	if (got != CRYPT_KEY_BYTES)
		return -EINVAL;
	*key = TAKE_PTR(k);
	return 0;
}

int crypt_passphrase_derive(const char *path, const uint8_t salt[CRYPT_SALT_BYTES],
                            uint64_t opslimit, size_t memlimit, uint8_t **key)
{
	if (!path || !salt || !key)
		return -EINVAL;
	*key = NULL;
	if (opslimit < crypto_pwhash_OPSLIMIT_MIN || opslimit > crypto_pwhash_OPSLIMIT_MAX ||
	    memlimit < crypto_pwhash_MEMLIMIT_MIN || memlimit > crypto_pwhash_MEMLIMIT_MAX)
		return -EINVAL;
	int r = crypt_init();
	if (r < 0)
		return r;
	_cleanup_secret_ secret *pw = NULL;
	r = crypt_private_read(path, CRYPT_PASSPHRASE_MAX, &pw);
	if (r < 0)
		return r;
	_cleanup_secret_bytes_ uint8_t *k = crypt_alloc(CRYPT_KEY_BYTES);
	if (!k)
		return -ENOMEM;
	if (crypto_pwhash(k, CRYPT_KEY_BYTES, (const char *)secret_data(pw), secret_len(pw), salt,
	                  opslimit, memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -ENOMEM; /* libsodium fails here only when it cannot allocate memlimit */
	*key = TAKE_PTR(k);
	return 0;
}

int crypt_private_read(const char *path, size_t max, secret **out)
{
	if (!path || !out || max == 0 || max >= SIZE_MAX)
		return -EINVAL;
	*out = NULL;
	struct stat st;
	_cleanup_close_ int fd = crypt_open_private(path, &st);
	if (fd < 0)
		return fd;
	_cleanup_secret_ secret *b = secret_new(max + 1);
	if (!b)
		return -ENOMEM;
	size_t len = 0;
	int r = fileio_read_upto(fd, secret_data(b), max + 1, &len);
	if (r < 0)
		return r;
	if (len > max)
		return -EFBIG;
	if (len > 0 && secret_data(b)[len - 1] == '\n')
		len--;
	if (len == 0)
		return -EINVAL;
	*out = secret_from(secret_data(b), len);
	return *out ? 0 : -ENOMEM;
}

int crypt_seal(const uint8_t key[CRYPT_KEY_BYTES], const uint8_t *ad, size_t adlen,
               const uint8_t *pt, size_t ptlen, uint8_t *out)
{
	if (!key || !out || (!pt && ptlen) || (!ad && adlen) ||
	    ptlen > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX)
		return -EINVAL;
	int r = crypt_init();
	if (r < 0)
		return r;
	uint8_t *nonce = out;
	randombytes_buf(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	unsigned long long clen = 0;
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(
	        out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen, pt, ptlen, ad, adlen,
	        NULL, nonce, key) != 0)
		return -EIO;
	return 0;
}

int crypt_open(const uint8_t key[CRYPT_KEY_BYTES], const uint8_t *ad, size_t adlen,
               const uint8_t *ct, size_t ctlen, uint8_t *out)
{
	if (!key || !ct || (!ad && adlen))
		return -EINVAL;
	if (ctlen < CRYPT_SEAL_OVERHEAD)
		return -EBADMSG;
	size_t ptlen = ctlen - CRYPT_SEAL_OVERHEAD;
	if (!out && ptlen)
		return -EINVAL;
	int r = crypt_init();
	if (r < 0)
		return r;
	unsigned long long mlen = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
	        out, &mlen, NULL, ct + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	        ctlen - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, ad, adlen, ct, key) != 0 ||
	    mlen != ptlen) {
		if (out && ptlen)
			sodium_memzero(out, ptlen);
		return -EBADMSG;
	}
	return 0;
}

void crypt_mac(const uint8_t key[CRYPT_KEY_BYTES], const uint8_t *msg, size_t len,
               uint8_t out[CRYPT_MAC_BYTES])
{
	(void)crypt_init();
	crypto_generichash(out, CRYPT_MAC_BYTES, msg, len, key, CRYPT_KEY_BYTES);
}

int crypt_mac_verify(const uint8_t key[CRYPT_KEY_BYTES], const uint8_t *msg, size_t len,
                     const uint8_t mac[CRYPT_MAC_BYTES])
{
	uint8_t want[CRYPT_MAC_BYTES];
	crypt_mac(key, msg, len, want);
	int r = crypto_verify_32(want, mac) == 0 ? 0 : -EBADMSG;
	sodium_memzero(want, sizeof(want));
	return r;
}

int crypt_subkey(const uint8_t key[CRYPT_KEY_BYTES], uint64_t id, const char ctx[8], uint8_t **sub)
{
	if (!key || !ctx || !sub)
		return -EINVAL;
	*sub = NULL;
	_cleanup_secret_bytes_ uint8_t *k = crypt_alloc(CRYPT_KEY_BYTES);
	if (!k)
		return -ENOMEM;
	if (crypto_kdf_derive_from_key(k, CRYPT_KEY_BYTES, id, ctx, key) != 0)
		return -EIO;
	*sub = TAKE_PTR(k);
	return 0;
}
