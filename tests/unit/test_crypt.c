/* Unit tests for broker/crypt: AEAD, MACs, subkeys, key files and passphrases. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "broker/crypto/crypt.h"
#include "tests/unit/testdir.h"
#include "tests/unit/runner.h"

static char *tpath(const char *name)
{
	static char buf[256];
	snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
	return buf;
}

static void write_file(const char *path, const void *d, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, d, n), (ssize_t)n);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static uint8_t *random_key(void)
{
	uint8_t *k = crypt_alloc(CRYPT_KEY_BYTES);
	ck_assert_ptr_nonnull(k);
	randombytes_buf(k, CRYPT_KEY_BYTES);
	return k;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static const uint8_t msg[] = "the quick brown fox\0with a NUL and more bytes";
static const uint8_t ad[] = "secret|a/b|7";

START_TEST(test_round_trip)
{
	uint8_t *k = random_key();
	uint8_t ct[sizeof(msg) + CRYPT_SEAL_OVERHEAD];
	uint8_t *pt = crypt_alloc(sizeof(msg));
	ck_assert_int_eq(crypt_seal(k, ad, sizeof(ad), msg, sizeof(msg), ct), 0);
	ck_assert_int_eq(crypt_open(k, ad, sizeof(ad), ct, sizeof(ct), pt), 0);
	ck_assert_mem_eq(pt, msg, sizeof(msg));
	/* Random nonce: sealing twice gives different boxes. */
	uint8_t ct2[sizeof(ct)];
	ck_assert_int_eq(crypt_seal(k, ad, sizeof(ad), msg, sizeof(msg), ct2), 0);
	ck_assert_int_ne(memcmp(ct, ct2, sizeof(ct)), 0);
	/* Empty plaintext and no AD. */
	uint8_t e[CRYPT_SEAL_OVERHEAD];
	ck_assert_int_eq(crypt_seal(k, NULL, 0, NULL, 0, e), 0);
	ck_assert_int_eq(crypt_open(k, NULL, 0, e, sizeof(e), NULL), 0);
	ck_assert_int_eq(crypt_open(k, NULL, 0, e, CRYPT_SEAL_OVERHEAD - 1, NULL), -EBADMSG);
	crypt_free(pt);
	crypt_free(k);
}
END_TEST

START_TEST(test_wrong_key)
{
	uint8_t *k = random_key(), *k2 = random_key();
	uint8_t ct[sizeof(msg) + CRYPT_SEAL_OVERHEAD];
	uint8_t pt[sizeof(msg)];
	ck_assert_int_eq(crypt_seal(k, ad, sizeof(ad), msg, sizeof(msg), ct), 0);
	memset(pt, 0xaa, sizeof(pt));
	ck_assert_int_eq(crypt_open(k2, ad, sizeof(ad), ct, sizeof(ct), pt), -EBADMSG);
	ck_assert(all_zero(pt, sizeof(pt)));
	crypt_free(k);
	crypt_free(k2);
}
END_TEST

START_TEST(test_flip_every_byte)
{
	uint8_t *k = random_key();
	uint8_t ct[sizeof(msg) + CRYPT_SEAL_OVERHEAD];
	uint8_t pt[sizeof(msg)];
	ck_assert_int_eq(crypt_seal(k, ad, sizeof(ad), msg, sizeof(msg), ct), 0);
	/* Nonce (0..23), ciphertext, tag (last 16): every single flipped byte is refused. */
	for (size_t i = 0; i < sizeof(ct); i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			ct[i] ^= (uint8_t)(1u << bit);
			memset(pt, 0xaa, sizeof(pt));
			ck_assert_int_eq(crypt_open(k, ad, sizeof(ad), ct, sizeof(ct), pt),
			                 -EBADMSG);
			ck_assert_msg(all_zero(pt, sizeof(pt)), "output not wiped at byte %zu", i);
			ct[i] ^= (uint8_t)(1u << bit);
		}
	}
	ck_assert_int_eq(crypt_open(k, ad, sizeof(ad), ct, sizeof(ct), pt), 0);
	/* Truncated or extended boxes. */
	ck_assert_int_eq(crypt_open(k, ad, sizeof(ad), ct, sizeof(ct) - 1, pt), -EBADMSG);
	crypt_free(k);
}
END_TEST

START_TEST(test_wrong_ad)
{
	uint8_t *k = random_key();
	uint8_t ct[sizeof(msg) + CRYPT_SEAL_OVERHEAD];
	uint8_t pt[sizeof(msg)];
	ck_assert_int_eq(crypt_seal(k, ad, sizeof(ad), msg, sizeof(msg), ct), 0);
	uint8_t ad2[sizeof(ad)];
	memcpy(ad2, ad, sizeof(ad));
	ad2[sizeof(ad2) - 2] ^= 1;
	memset(pt, 0xaa, sizeof(pt));
	ck_assert_int_eq(crypt_open(k, ad2, sizeof(ad2), ct, sizeof(ct), pt), -EBADMSG);
	ck_assert(all_zero(pt, sizeof(pt)));
	ck_assert_int_eq(crypt_open(k, ad, sizeof(ad) - 1, ct, sizeof(ct), pt), -EBADMSG);
	ck_assert_int_eq(crypt_open(k, NULL, 0, ct, sizeof(ct), pt), -EBADMSG);
	crypt_free(k);
}
END_TEST

START_TEST(test_mac)
{
	uint8_t *k = random_key(), *k2 = random_key();
	uint8_t mac[CRYPT_MAC_BYTES], mac2[CRYPT_MAC_BYTES];
	crypt_mac(k, msg, sizeof(msg), mac);
	crypt_mac(k, msg, sizeof(msg), mac2);
	ck_assert_mem_eq(mac, mac2, sizeof(mac));
	ck_assert_int_eq(crypt_mac_verify(k, msg, sizeof(msg), mac), 0);
	ck_assert_int_eq(crypt_mac_verify(k2, msg, sizeof(msg), mac), -EBADMSG);
	ck_assert_int_eq(crypt_mac_verify(k, msg, sizeof(msg) - 1, mac), -EBADMSG);
	for (size_t i = 0; i < sizeof(mac); i++) {
		mac[i] ^= 0x80;
		ck_assert_int_eq(crypt_mac_verify(k, msg, sizeof(msg), mac), -EBADMSG);
		mac[i] ^= 0x80;
	}
	crypt_free(k);
	crypt_free(k2);
}
END_TEST

START_TEST(test_subkey)
{
	uint8_t *k = random_key();
	uint8_t *a = NULL, *a2 = NULL, *b = NULL, *c = NULL;
	ck_assert_int_eq(crypt_subkey(k, 1, "sd_head_", &a), 0);
	ck_assert_int_eq(crypt_subkey(k, 1, "sd_head_", &a2), 0);
	ck_assert_int_eq(crypt_subkey(k, 2, "sd_head_", &b), 0);
	ck_assert_int_eq(crypt_subkey(k, 1, "sd_grant", &c), 0);
	ck_assert_mem_eq(a, a2, CRYPT_KEY_BYTES);
	ck_assert_int_ne(memcmp(a, b, CRYPT_KEY_BYTES), 0);
	ck_assert_int_ne(memcmp(a, c, CRYPT_KEY_BYTES), 0);
	ck_assert_int_ne(memcmp(a, k, CRYPT_KEY_BYTES), 0);
	crypt_free(a);
	crypt_free(a2);
	crypt_free(b);
	crypt_free(c);
	crypt_free(k);
}
END_TEST

START_TEST(test_keyfile_create)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/etc/secretd/master.key", tmpdir);
	ck_assert_int_eq(crypt_keyfile_create(path), 0);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0400);
	ck_assert_int_eq(st.st_size, CRYPT_KEY_BYTES);
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/etc/secretd", tmpdir);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0700);

	uint8_t *k1 = NULL;
	ck_assert_int_eq(crypt_keyfile_read(path, &k1), 0);
	ck_assert_int_eq(crypt_keyfile_create(path), -EEXIST);
	uint8_t *k2 = NULL;
	ck_assert_int_eq(crypt_keyfile_read(path, &k2), 0);
	ck_assert_mem_eq(k1, k2, CRYPT_KEY_BYTES); /* not overwritten */
	crypt_free(k1);
	crypt_free(k2);

	/* A symlink at the path is not followed. */
	char link[256];
	snprintf(link, sizeof(link), "%s/link.key", tmpdir);
	ck_assert_int_eq(symlink(tpath("nowhere"), link), 0);
	ck_assert_int_lt(crypt_keyfile_create(link), 0);
	ck_assert_int_ne(access(tpath("nowhere"), F_OK), 0);
}
END_TEST

START_TEST(test_keyfile_read_refuses)
{
	uint8_t key[CRYPT_KEY_BYTES + 1];
	randombytes_buf(key, sizeof(key));
	uint8_t *k = (uint8_t *)1;

	write_file(tpath("loose.key"), key, CRYPT_KEY_BYTES, 0644);
	ck_assert_int_eq(crypt_keyfile_read(tpath("loose.key"), &k), -EPERM);
	ck_assert_ptr_null(k);
	write_file(tpath("group.key"), key, CRYPT_KEY_BYTES, 0640);
	ck_assert_int_eq(crypt_keyfile_read(tpath("group.key"), &k), -EPERM);
	write_file(tpath("other.key"), key, CRYPT_KEY_BYTES, 0602);
	ck_assert_int_eq(crypt_keyfile_read(tpath("other.key"), &k), -EPERM);
	if (geteuid() == 0) { /* another owner, mode 0400: still not ours */
		write_file(tpath("theirs.key"), key, CRYPT_KEY_BYTES, 0400);
		ck_assert_int_eq(chown(tpath("theirs.key"), 65534, 65534), 0);
		ck_assert_int_eq(crypt_keyfile_read(tpath("theirs.key"), &k), -EPERM);
		ck_assert_ptr_null(k);
	}

	write_file(tpath("short.key"), key, CRYPT_KEY_BYTES - 1, 0600);
	ck_assert_int_eq(crypt_keyfile_read(tpath("short.key"), &k), -EINVAL);
	write_file(tpath("long.key"), key, CRYPT_KEY_BYTES + 1, 0600);
	ck_assert_int_eq(crypt_keyfile_read(tpath("long.key"), &k), -EINVAL);
	write_file(tpath("empty.key"), key, 0, 0600);
	ck_assert_int_eq(crypt_keyfile_read(tpath("empty.key"), &k), -EINVAL);
	ck_assert_int_eq(crypt_keyfile_read(tpath("missing.key"), &k), -ENOENT);
	ck_assert_int_eq(crypt_keyfile_read(tmpdir, &k), -EINVAL);

	write_file(tpath("good.key"), key, CRYPT_KEY_BYTES, 0600);
	ck_assert_int_eq(crypt_keyfile_read(tpath("good.key"), &k), 0);
	ck_assert_mem_eq(k, key, CRYPT_KEY_BYTES);
	crypt_free(k);
}
END_TEST

START_TEST(test_passphrase)
{
	uint8_t salt[CRYPT_SALT_BYTES];
	randombytes_buf(salt, sizeof(salt));
	uint64_t ops = crypto_pwhash_OPSLIMIT_MIN;
	size_t mem = crypto_pwhash_MEMLIMIT_MIN;
	write_file(tpath("p1"), "correct horse\n", 14, 0600);
	write_file(tpath("p2"), "correct horse", 13, 0600);
	write_file(tpath("p3"), "correct horsf\n", 14, 0600);
	write_file(tpath("p4"), "correct horse\n\n", 15, 0600);
	write_file(tpath("empty"), "\n", 1, 0600);
	uint8_t *k1 = NULL, *k2 = NULL, *k3 = NULL, *k4 = NULL, *k5 = NULL;
	ck_assert_int_eq(crypt_passphrase_derive(tpath("p1"), salt, ops, mem, &k1), 0);
	ck_assert_int_eq(crypt_passphrase_derive(tpath("p2"), salt, ops, mem, &k2), 0);
	ck_assert_int_eq(crypt_passphrase_derive(tpath("p3"), salt, ops, mem, &k3), 0);
	ck_assert_int_eq(crypt_passphrase_derive(tpath("p4"), salt, ops, mem, &k4), 0);
	ck_assert_mem_eq(k1, k2, CRYPT_KEY_BYTES); /* one trailing newline stripped */
	ck_assert_int_ne(memcmp(k1, k3, CRYPT_KEY_BYTES), 0);
	ck_assert_int_ne(memcmp(k1, k4, CRYPT_KEY_BYTES), 0); /* only one */
	salt[0] ^= 1;
	ck_assert_int_eq(crypt_passphrase_derive(tpath("p1"), salt, ops, mem, &k5), 0);
	ck_assert_int_ne(memcmp(k1, k5, CRYPT_KEY_BYTES), 0);
	uint8_t *k6 = NULL;
	ck_assert_int_eq(crypt_passphrase_derive(tpath("empty"), salt, ops, mem, &k6), -EINVAL);
	ck_assert_int_eq(crypt_passphrase_derive(tpath("p1"), salt, 0, mem, &k6), -EINVAL);
	ck_assert_ptr_null(k6);
	crypt_free(k1);
	crypt_free(k2);
	crypt_free(k3);
	crypt_free(k4);
	crypt_free(k5);
}
END_TEST

/* A passphrase file gets the key file's checks: regular, ours, no group or other bits. */
START_TEST(test_passphrase_file_refuses)
{
	uint8_t salt[CRYPT_SALT_BYTES];
	randombytes_buf(salt, sizeof(salt));
	uint64_t ops = crypto_pwhash_OPSLIMIT_MIN;
	size_t mem = crypto_pwhash_MEMLIMIT_MIN;
	static const mode_t loose[] = {0644, 0640, 0604, 0660, 0606, 0610, 0601};
	uint8_t *k = NULL;
	for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
		write_file(tpath("loose.pass"), "correct horse\n", 14, loose[i]);
		ck_assert_msg(crypt_passphrase_derive(tpath("loose.pass"), salt, ops, mem, &k) ==
		                  -EPERM,
		              "mode %04o accepted", (unsigned)loose[i]);
		ck_assert_ptr_null(k);
	}
	if (geteuid() == 0) {
		write_file(tpath("theirs.pass"), "correct horse\n", 14, 0600);
		ck_assert_int_eq(chown(tpath("theirs.pass"), 65534, 65534), 0);
		ck_assert_int_eq(crypt_passphrase_derive(tpath("theirs.pass"), salt, ops, mem, &k),
		                 -EPERM);
		ck_assert_ptr_null(k);
	}
	ck_assert_int_eq(crypt_passphrase_derive(tmpdir, salt, ops, mem, &k), -EINVAL);
	char link[256];
	snprintf(link, sizeof(link), "%s/link.pass", tmpdir);
	write_file(tpath("real.pass"), "correct horse\n", 14, 0600);
	ck_assert_int_eq(symlink(tpath("real.pass"), link), 0);
	ck_assert_int_eq(crypt_passphrase_derive(link, salt, ops, mem, &k), -ELOOP);
	write_file(tpath("ok.pass"), "correct horse\n", 14, 0400);
	ck_assert_int_eq(crypt_passphrase_derive(tpath("ok.pass"), salt, ops, mem, &k), 0);
	crypt_free(k);
}
END_TEST

START_TEST(test_harden)
{
	ck_assert_int_eq(crypt_harden_process(), 0);
	crypt_free(NULL);
}
END_TEST

static Suite *crypt_suite(void)
{
	Suite *s = suite_create("crypt");
	TCase *tc = tcase_create("aead");
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_wrong_key);
	tcase_add_test(tc, test_flip_every_byte);
	tcase_add_test(tc, test_wrong_ad);
	tcase_add_test(tc, test_mac);
	tcase_add_test(tc, test_subkey);
	tcase_add_test(tc, test_harden);
	suite_add_tcase(s, tc);
	TCase *tf = tcase_create("files");
	tcase_add_unchecked_fixture(tf, base_setup, base_teardown);
	tcase_add_checked_fixture(tf, tmpdir_setup, tmpdir_teardown);
	tcase_add_test(tf, test_keyfile_create);
	tcase_add_test(tf, test_keyfile_read_refuses);
	tcase_add_test(tf, test_passphrase);
	tcase_add_test(tf, test_passphrase_file_refuses);
	suite_add_tcase(s, tf);
	return s;
}

Suite *unit_suite(void)
{
	return crypt_suite();
}
