/* Tests of fuse/sfs's blobs over common/secret: sfs_blob_wrap shares the secret (no copy) and
 * holds its own reference; sfs_blob_new copies. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "common/secret.h"
#include "fuse/sfs.h"
#include "tests/unit/runner.h"

static uint64_t live(void)
{
	struct secret_stats st;
	secret_get_stats(&st);
	return st.live;
}

START_TEST(test_wrap_shares)
{
	uint64_t live0 = live();
	secret *s = secret_from("decrypted once", 14);
	ck_assert_ptr_nonnull(s);
	sfs_blob *b = sfs_blob_wrap(s, 42);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_eq(sfs_blob_secret(b), s); /* the same bytes: not copied */
	ck_assert_uint_eq(sfs_blob_len(b), 14);
	ck_assert_uint_eq(sfs_blob_version(b), 42);
	ck_assert_uint_eq(live(), live0 + 1);
	secret_unref(s); /* the blob's own reference keeps it */
	ck_assert_mem_eq(secret_data(sfs_blob_secret(b)), "decrypted once", 14);
	sfs_blob_ref(b);
	sfs_blob_unref(b);
	ck_assert_uint_eq(live(), live0 + 1);
	sfs_blob_unref(b); /* the last reference to the secret too */
	ck_assert_uint_eq(live(), live0);
	errno = 0;
	ck_assert_ptr_null(sfs_blob_wrap(NULL, 1));
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(test_new_copies)
{
	uint64_t live0 = live();
	uint8_t buf[3] = {'a', 'b', 'c'};
	sfs_blob *b = sfs_blob_new(buf, 3, 7);
	ck_assert_ptr_nonnull(b);
	buf[0] = 'x';
	ck_assert_mem_eq(secret_data(sfs_blob_secret(b)), "abc", 3);
	ck_assert_uint_eq(live(), live0 + 1);
	sfs_blob_unref(b);
	ck_assert_uint_eq(live(), live0);
	ck_assert_ptr_null(sfs_blob_new(NULL, 3, 1));
	ck_assert_ptr_null(sfs_blob_secret(NULL));
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("sfs_blob");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_wrap_shares);
	tcase_add_test(tc, test_new_copies);
	suite_add_tcase(s, tc);
	return s;
}
