/* testdir.h: scratch directories for the unit tests. base is made once in the Check runner
 * process (an unchecked fixture) and removed there even when a forked test fails; tmpdir is a
 * fresh directory per test inside it. Names come from the test program: /tmp/test_X.XXXXXX. */
#pragma once
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include <check.h>

static char base[64], tmpdir[128];

static inline int testdir_rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* Recursively removes dir (no symlinks followed). */
static inline void testdir_remove(const char *dir)
{
	nftw(dir, testdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void base_setup(void)
{
	snprintf(base, sizeof(base), "/tmp/%s.XXXXXX", program_invocation_short_name);
	if (!mkdtemp(base))
		abort();
}

static inline void base_teardown(void)
{
	testdir_remove(base);
}

/* Makes a fresh tmpdir inside base (call from a per-test fixture). */
static inline void tmpdir_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/t.XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static inline void tmpdir_teardown(void)
{
	testdir_remove(tmpdir);
}
