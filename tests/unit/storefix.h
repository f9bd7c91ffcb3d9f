/* storefix.h: a fresh store per test for the store and audit unit tests: the state directory,
 * key file and database path inside testdir.h's tmpdir, and open_new() to create and open it. */
#pragma once
#include <stdio.h>

#include <check.h>

#include "broker/store/store.h"
#include "tests/unit/testdir.h"

static char state[256], keyfile[256], dbpath[300];
static struct store_opts opts;

static inline void storefix_setup(void)
{
	tmpdir_setup();
	snprintf(state, sizeof(state), "%s/state", tmpdir);
	snprintf(keyfile, sizeof(keyfile), "%s/etc/master.key", tmpdir);
	snprintf(dbpath, sizeof(dbpath), "%s/secretd.db", state);
	opts = (struct store_opts){.state_dir = state, .key_file = keyfile};
}

static inline void storefix_teardown(void)
{
	tmpdir_teardown();
}

/* Creates the store (new key file) and opens it. */
static inline store *open_new(void)
{
	ck_assert_int_eq(store_init(&opts), 0);
	store *s = NULL;
	ck_assert_int_eq(store_open(&s, &opts), 0);
	ck_assert_ptr_nonnull(s);
	return s;
}
