/* Tests of common/secret: refcounts, wiping, the slab allocator, large secrets, ENOMEM, cleanup,
 * the pool of wiped regions. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/secret.h"
#include "tests/unit/runner.h"

static struct secret_stats stats(void)
{
	struct secret_stats st;
	secret_get_stats(&st);
	return st;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

START_TEST(test_refcount)
{
	uint64_t live0 = stats().live;
	secret *s = secret_from("hunter2", 7);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(secret_len(s), 7);
	ck_assert_mem_eq(secret_data(s), "hunter2", 7);
	ck_assert_uint_eq(stats().live, live0 + 1);
	ck_assert_ptr_eq(secret_ref(s), s);
	secret_unref(s);
	/* still held once */
	ck_assert_mem_eq(secret_data(s), "hunter2", 7);
	ck_assert_uint_eq(stats().live, live0 + 1);
	secret_unref(s);
	ck_assert_uint_eq(stats().live, live0);
	secret_unref(NULL);
	ck_assert_ptr_null(secret_ref(NULL));
	ck_assert_ptr_null(secret_data(NULL));
	ck_assert_uint_eq(secret_len(NULL), 0);
}
END_TEST

START_TEST(test_new_zeroed_and_from)
{
	secret *s = secret_new(100);
	ck_assert_ptr_nonnull(s);
	ck_assert(all_zero(secret_data(s), 100));
	ck_assert_uint_eq((uintptr_t)secret_data(s) % 16, 0);
	secret_unref(s);
	secret *z = secret_new(0);
	ck_assert_ptr_nonnull(z);
	ck_assert_uint_eq(secret_len(z), 0);
	ck_assert_ptr_nonnull(secret_data(z));
	secret_unref(z);
	z = secret_from(NULL, 0);
	ck_assert_ptr_nonnull(z);
	secret_unref(z);
	errno = 0;
	ck_assert_ptr_null(secret_from(NULL, 3));
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* The last unref wipes a slab secret's bytes (and its header) in place. The slab being filled
 * stays mapped, so the memory can still be looked at. */
START_TEST(test_wipe_on_last_unref)
{
	secret *keep = secret_new(8); /* the slab stays mapped whatever happens */
	secret *s = secret_from("0123456789abcdef0123456789abcdef", 32);
	ck_assert_ptr_nonnull(keep);
	ck_assert_ptr_nonnull(s);
	uint8_t *p = secret_data(s);
	secret_ref(s);
	secret_unref(s);
	ck_assert_mem_eq(p, "0123456789abcdef", 16); /* one reference left: not wiped */
	secret_unref(s);
	ck_assert(all_zero(p - SECRET_HEADER_BYTES, SECRET_HEADER_BYTES + 32));
	secret_unref(keep);
}
END_TEST

START_TEST(test_slab_packing)
{
	struct secret_stats st0 = stats();
	enum { N = 2000 };
	secret **v = calloc(N, sizeof(*v));
	ck_assert_ptr_nonnull(v);
	for (size_t i = 0; i < N; i++) {
		v[i] = secret_from("a 32-byte value, as a key is....", 32);
		ck_assert_ptr_nonnull(v[i]);
	}
	struct secret_stats st1 = stats();
	/* 64 bytes each (header + data): 512 per slab */
	size_t per = SECRET_SLAB_BYTES / (SECRET_HEADER_BYTES + 32);
	ck_assert_uint_le(st1.slabs - st0.slabs, N / per + 2);
	ck_assert_uint_eq(st1.regions, st0.regions);
	/* neighbours in one slab sit back to back */
	ck_assert_ptr_eq(secret_data(v[1]), secret_data(v[0]) + SECRET_HEADER_BYTES + 32);
	for (size_t i = 0; i < N; i++)
		ck_assert_mem_eq(secret_data(v[i]), "a 32-byte value, as a key is....", 32);
	for (size_t i = 0; i < N; i++)
		secret_unref(v[i]);
	free(v);
	struct secret_stats st2 = stats();
	ck_assert_uint_eq(st2.live, st0.live);
	/* every full slab was unmapped; at most the one being filled remains */
	ck_assert_uint_le(st2.slabs, 1);
	/* the largest slab secret is in a slab, one byte more gets its own region */
	secret *a = secret_new(SECRET_SLAB_VALUE_MAX);
	ck_assert_uint_eq(stats().regions, st0.regions);
	secret *b = secret_new(SECRET_SLAB_VALUE_MAX + 1);
	ck_assert_uint_eq(stats().regions, st0.regions + 1);
	secret_unref(a);
	secret_unref(b);
	ck_assert_uint_eq(stats().regions, st0.regions);
}
END_TEST

/* The slab being filled starts over once all of its secrets are gone: alloc/free cycles (a key
 * read, used and dropped) do not map slab after slab. */
START_TEST(test_slab_reuse)
{
	secret *s = secret_new(16);
	ck_assert_ptr_nonnull(s);
	uint8_t *first = secret_data(s);
	struct secret_stats st0 = stats();
	secret_unref(s);
	for (int i = 0; i < 10000; i++) {
		secret *t = secret_from("x", 1);
		ck_assert_ptr_nonnull(t);
		ck_assert_ptr_eq(secret_data(t), first);
		secret_unref(t);
	}
	struct secret_stats st1 = stats();
	ck_assert_uint_eq(st1.slabs, st0.slabs);
	ck_assert_uint_ge(st1.slab_resets, st0.slab_resets + 10000);
	/* not while one of its secrets lives */
	secret *hold = secret_new(16);
	secret *next = secret_new(16);
	ck_assert_ptr_eq(secret_data(next), secret_data(hold) + SECRET_HEADER_BYTES + 16);
	secret_unref(next);
	secret *again = secret_new(16);
	ck_assert_ptr_ne(secret_data(again), secret_data(hold));
	secret_unref(again);
	secret_unref(hold);
}
END_TEST

START_TEST(test_large)
{
	size_t n = 3 * 1024 * 1024 + 5;
	uint8_t *src = malloc(n);
	ck_assert_ptr_nonnull(src);
	for (size_t i = 0; i < n; i++)
		src[i] = (uint8_t)(i * 7);
	struct secret_stats st0 = stats();
	secret *s = secret_from(src, n);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(secret_len(s), n);
	ck_assert_uint_eq((uintptr_t)secret_data(s) % 16, 0);
	ck_assert(memcmp(secret_data(s), src, n) == 0);
	ck_assert_uint_eq(stats().regions, st0.regions + 1);
	ck_assert_uint_eq(stats().slabs, st0.slabs);
	secret_unref(secret_ref(s));
	secret_unref(s);
	ck_assert_uint_eq(stats().regions, st0.regions);
	free(src);
}
END_TEST

START_TEST(test_enomem_size)
{
	errno = 0;
	ck_assert_ptr_null(secret_new(SIZE_MAX));
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(secret_new(SIZE_MAX - SECRET_HEADER_BYTES));
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(secret_new(SIZE_MAX / 4)); /* sodium_malloc itself fails */
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_ptr_null(secret_bytes_alloc(SIZE_MAX));
}
END_TEST

/* The process's address space in bytes (VmSize), 0 if unknown. */
static __attribute__((unused)) unsigned long vm_size(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long kib = 0;
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmSize:", 7))
			kib = strtoul(line + 7, NULL, 10);
	if (f)
		fclose(f);
	return kib * 1024;
}

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* Under a small address-space limit the slab path runs out too: NULL and ENOMEM, never a crash,
 * and everything allocated before is freed normally. (Check runs each test in its own process;
 * ASan's allocator aborts instead of failing, so not there.) */
START_TEST(test_enomem_slabs)
{
#ifdef UNDER_ASAN
	return;
#else
	struct rlimit old, rl;
	ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
	rl = old;
	rl.rlim_cur = vm_size() + 64UL * 1024 * 1024; /* room for about 1,800 slabs more */
	if (rl.rlim_cur > old.rlim_max || setrlimit(RLIMIT_AS, &rl) < 0)
		return;
	size_t cap = 1 << 20, n = 0;
	secret **v = calloc(cap, sizeof(*v));
	ck_assert_ptr_nonnull(v);
	secret *s = NULL;
	for (;;) {
		errno = 0;
		s = secret_new(SECRET_SLAB_VALUE_MAX);
		if (!s)
			break;
		ck_assert_uint_lt(n, cap);
		v[n++] = s;
	}
	ck_assert_int_eq(errno, ENOMEM);
	ck_assert_uint_gt(n, 0);
	for (size_t i = 0; i < n; i++)
		secret_unref(v[i]);
	free(v);
	ck_assert_uint_le(stats().slabs, 1);
	/* and it works again once there is room (the limit back as it was: CK_FORK=no runs the
	 * next tests in this process) */
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
	s = secret_new(SECRET_SLAB_VALUE_MAX);
	ck_assert_ptr_nonnull(s);
	secret_unref(s);
#endif
}
END_TEST

START_TEST(test_cleanup)
{
	uint64_t live0 = stats().live;
	{
		_cleanup_secret_ secret *a = secret_from("abc", 3);
		_cleanup_secret_ secret *none = NULL;
		_cleanup_secret_bytes_ uint8_t *b = secret_bytes_alloc(40);
		ck_assert_ptr_nonnull(a);
		ck_assert_ptr_nonnull(b);
		ck_assert(all_zero(b, 40));
		ck_assert_uint_eq(stats().live, live0 + 2);
		(void)none;
	}
	ck_assert_uint_eq(stats().live, live0);
	uint8_t *big = secret_bytes_alloc(100000);
	ck_assert_ptr_nonnull(big);
	memset(big, 1, 100000);
	secret_bytes_free(big);
	secret_bytes_free(NULL);
	ck_assert_uint_eq(stats().live, live0);
}
END_TEST

static secret *shared;

static void *pound(void *arg)
{
	for (int i = 0; i < 200000; i++)
		secret_unref(secret_ref(shared));
	for (int i = 0; i < 2000; i++)
		secret_unref(secret_from("tt", 2));
	return arg;
}

START_TEST(test_threads)
{
	uint64_t live0 = stats().live;
	shared = secret_from("shared", 6);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, pound, NULL), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ck_assert_mem_eq(secret_data(shared), "shared", 6);
	ck_assert_uint_eq(stats().live, live0 + 1);
	secret_unref(shared);
	ck_assert_uint_eq(stats().live, live0);
}
END_TEST

/* The pool of own regions (#15): a reply-sized buffer per request reuses a wiped region of its
 * class instead of mapping one; a released region is wiped at once; the pool is bounded. */
START_TEST(test_pool_reuse_and_wipe)
{
	secret_pool_drain();
	struct secret_stats st0 = stats();
	ck_assert_uint_eq(st0.pooled, 0);
	secret *a = secret_new(3000); /* class 4 KiB */
	ck_assert_ptr_nonnull(a);
	memset(secret_data(a), 0xA5, 3000);
	uint8_t *hdr = secret_data(a) - SECRET_HEADER_BYTES;
	secret_unref(a);
	/* kept (still mapped: reading it is what the next owner would see) and wiped, header
	 * included, over its whole class */
	ck_assert_uint_eq(stats().pooled, 1);
	ck_assert(all_zero(hdr, SECRET_POOL_MIN));
	/* 1,000 requests' worth of buffers of that class: one region, no new mapping */
	for (int i = 0; i < 1000; i++) {
		secret *b = secret_new(2049 + (size_t)(i % 2000));
		ck_assert_ptr_nonnull(b);
		ck_assert_ptr_eq(secret_data(b) - SECRET_HEADER_BYTES, hdr);
		ck_assert(all_zero(secret_data(b), secret_len(b))); /* new secrets are zeroed */
		memset(secret_data(b), 0x5A, secret_len(b));
		secret_unref(b);
	}
	struct secret_stats st1 = stats();
	ck_assert_uint_ge(st1.pool_hits, st0.pool_hits + 1000);
	ck_assert_uint_eq(st1.regions, st0.regions);
	ck_assert(all_zero(hdr, SECRET_POOL_MIN));
	/* a size past the largest class is not pooled */
	secret *big = secret_new(SECRET_POOL_MAX);
	ck_assert_ptr_nonnull(big);
	secret_unref(big);
	ck_assert_uint_eq(stats().pooled, 1);
	secret_pool_drain();
	ck_assert_uint_eq(stats().pooled, 0);
}
END_TEST

START_TEST(test_pool_bounded)
{
	secret_pool_drain();
	struct secret_stats st0 = stats();
	enum { N = 6 };
	secret *v[5][N];
	/* N live secrets of every class at once, then all released: each class keeps only
	 * SECRET_POOL_PER_CLASS of them, the others are unmapped */
	for (int c = 0; c < 5; c++)
		for (int i = 0; i < N; i++) {
			size_t len = (SECRET_POOL_MIN << c) - SECRET_HEADER_BYTES - 16;
			v[c][i] = secret_new(len);
			ck_assert_ptr_nonnull(v[c][i]);
		}
	ck_assert_uint_eq(stats().regions, st0.regions + 5 * N);
	for (int c = 0; c < 5; c++)
		for (int i = 0; i < N; i++)
			secret_unref(v[c][i]);
	struct secret_stats st1 = stats();
	ck_assert_uint_eq(st1.pooled, 5 * SECRET_POOL_PER_CLASS);
	ck_assert_uint_eq(st1.regions, st0.regions);
	ck_assert_uint_eq(st1.live, st0.live);
	secret_pool_drain();
	ck_assert_uint_eq(stats().pooled, 0);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("secret");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_refcount);
	tcase_add_test(tc, test_new_zeroed_and_from);
	tcase_add_test(tc, test_wipe_on_last_unref);
	tcase_add_test(tc, test_slab_packing);
	tcase_add_test(tc, test_slab_reuse);
	tcase_add_test(tc, test_large);
	tcase_add_test(tc, test_enomem_size);
	tcase_add_test(tc, test_enomem_slabs);
	tcase_add_test(tc, test_cleanup);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_pool_reuse_and_wipe);
	tcase_add_test(tc, test_pool_bounded);
	suite_add_tcase(s, tc);
	return s;
}
