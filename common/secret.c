/* secret: locked, wiped, reference-counted byte buffers (see secret.h). */
#include "common/secret.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* libsodium puts a 16-byte canary in front of a region's data: asking for 16 bytes less than
 * SECRET_SLAB_BYTES makes the region exactly SECRET_SLAB_BYTES of whole pages. */
#define SECRET_SLAB_USABLE (SECRET_SLAB_BYTES - 16)

/* A slab: a SECRET_SLAB_USABLE sodium_malloc region cut by a bump pointer. live counts its
 * secrets, +1 while it is the slab being filled. */
struct secret_slab {
	atomic_long live;
	size_t used;
	uint8_t *mem;
};

/* Lives in locked memory, right in front of the data (so a bare data pointer finds it). 16 bytes,
 * because for small secrets it is paid per secret in locked memory. */
struct secret {
	atomic_uint ref;
	uint32_t small_len; /* a slab secret's length, or SECRET_LARGE */
	union {
		struct secret_slab *slab; /* slab secrets */
		size_t len;               /* large ones: a sodium_malloc region of their own */
	} u;
	uint8_t data[] __attribute__((aligned(16)));
};
#define SECRET_LARGE UINT32_MAX
_Static_assert(sizeof(struct secret) == SECRET_HEADER_BYTES, "secret header size");
_Static_assert(SECRET_SLAB_VALUE_MAX + SECRET_HEADER_BYTES <= SECRET_SLAB_USABLE, "slab too small");

static pthread_mutex_t slab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct secret_slab *slab_cur; /* the slab being filled (NULL: none yet) */
static atomic_ullong n_live, n_slabs, n_regions, n_resets, n_pool_hits;

/* The pool of own regions (see secret.h): class c holds regions of SECRET_POOL_MIN << c bytes,
 * wiped, at most SECRET_POOL_PER_CLASS of them; under slab_lock. */
#define SECRET_POOL_CLASSES 5 /* 4, 8, 16, 32, 64 KiB */
_Static_assert((SECRET_POOL_MIN << (SECRET_POOL_CLASSES - 1)) == SECRET_POOL_MAX, "pool classes");
static void *pool[SECRET_POOL_CLASSES][SECRET_POOL_PER_CLASS];
static size_t pool_n[SECRET_POOL_CLASSES];
static size_t pool_total;

/* The pool class of an own region of need bytes (header included), or -1 past SECRET_POOL_MAX. */
static int pool_class(size_t need)
{
	if (need > SECRET_POOL_MAX)
		return -1;
	int c = 0;
	while ((SECRET_POOL_MIN << c) < need)
		c++;
	return c;
}

static void slab_put(struct secret_slab *sl)
{
	if (sl && atomic_fetch_sub_explicit(&sl->live, 1, memory_order_acq_rel) == 1) {
		sodium_free(sl->mem); /* zeroes before unmapping */
		free(sl);
		atomic_fetch_sub_explicit(&n_slabs, 1, memory_order_relaxed);
	}
}

/* Space for need bytes (a multiple of 16) in the slab being filled, or in a new one; *out gets
 * the slab, whose live count already includes the new secret. NULL on ENOMEM. */
static uint8_t *slab_alloc(size_t need, struct secret_slab **out)
{
	pthread_mutex_lock(&slab_lock);
	if (slab_cur && atomic_load_explicit(&slab_cur->live, memory_order_acquire) == 1 &&
	    slab_cur->used) {
		/* Every secret in it is gone (and was wiped): fill it again from the start. Only
		 * this function adds to a slab, under the lock, so nothing can appear meanwhile. */
		slab_cur->used = 0;
		atomic_fetch_add_explicit(&n_resets, 1, memory_order_relaxed);
	}
	if (!slab_cur || slab_cur->used + need > SECRET_SLAB_USABLE) {
		struct secret_slab *sl = calloc(1, sizeof(*sl));
		uint8_t *mem = sl ? sodium_malloc(SECRET_SLAB_USABLE) : NULL;
		if (!mem) {
			free(sl);
			pthread_mutex_unlock(&slab_lock);
			errno = ENOMEM;
			return NULL;
		}
		sl->mem = mem;
		atomic_init(&sl->live, 1);
		atomic_fetch_add_explicit(&n_slabs, 1, memory_order_relaxed);
		struct secret_slab *old = slab_cur;
		slab_cur = sl;
		slab_put(old);
	}
	uint8_t *p = slab_cur->mem + slab_cur->used;
	slab_cur->used += need;
	atomic_fetch_add_explicit(&slab_cur->live, 1, memory_order_relaxed);
	*out = slab_cur;
	pthread_mutex_unlock(&slab_lock);
	return p;
}

secret *secret_new(size_t len)
{
	if (sodium_init() < 0) {
		errno = ENOMEM;
		return NULL;
	}
	if (len > SIZE_MAX - SECRET_HEADER_BYTES - 15) {
		errno = ENOMEM;
		return NULL;
	}
	size_t need = (SECRET_HEADER_BYTES + len + 15) & ~(size_t)15;
	struct secret_slab *slab = NULL;
	uint8_t *mem;
	if (len <= SECRET_SLAB_VALUE_MAX) {
		mem = slab_alloc(need, &slab);
	} else {
		/* Up to SECRET_POOL_MAX, a region of its pool class: a pooled one (wiped when it
		 * went back) or a new one. A multiple of 16 bytes: sodium_malloc puts the region's
		 * end against its guard page, so the header (and the data) are 16-byte aligned. */
		int c = pool_class(need);
		mem = NULL;
		if (c >= 0) {
			need = SECRET_POOL_MIN << c;
			pthread_mutex_lock(&slab_lock);
			if (pool_n[c]) {
				mem = pool[c][--pool_n[c]];
				pool_total--;
			}
			pthread_mutex_unlock(&slab_lock);
			if (mem)
				atomic_fetch_add_explicit(&n_pool_hits, 1, memory_order_relaxed);
		}
		if (!mem)
			mem = sodium_malloc(need);
		if (mem)
			atomic_fetch_add_explicit(&n_regions, 1, memory_order_relaxed);
		else
			errno = ENOMEM;
	}
	if (!mem)
		return NULL;
	memset(mem, 0, need);
	secret *s = (secret *)(void *)mem;
	atomic_init(&s->ref, 1);
	if (slab) {
		s->small_len = (uint32_t)len;
		s->u.slab = slab;
	} else {
		s->small_len = SECRET_LARGE;
		s->u.len = len;
	}
	atomic_fetch_add_explicit(&n_live, 1, memory_order_relaxed);
	return s;
}

secret *secret_from(const void *p, size_t len)
{
	if (len && !p) {
		errno = EINVAL;
		return NULL;
	}
	secret *s = secret_new(len);
	if (s && len)
		memcpy(s->data, p, len);
	return s;
}

secret *secret_ref(secret *s)
{
	if (s)
		atomic_fetch_add_explicit(&s->ref, 1, memory_order_relaxed);
	return s;
}

void secret_unref(secret *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->ref, 1, memory_order_acq_rel) != 1)
		return;
	atomic_fetch_sub_explicit(&n_live, 1, memory_order_relaxed);
	if (s->small_len != SECRET_LARGE) {
		struct secret_slab *slab = s->u.slab;
		sodium_memzero(s, (SECRET_HEADER_BYTES + s->small_len + 15) & ~(size_t)15);
		slab_put(slab);
	} else {
		atomic_fetch_sub_explicit(&n_regions, 1, memory_order_relaxed);
		size_t need = (SECRET_HEADER_BYTES + s->u.len + 15) & ~(size_t)15;
		int c = pool_class(need);
		if (c >= 0) {
			/* wiped now, whether it is kept or not */
			sodium_memzero(s, SECRET_POOL_MIN << c);
			pthread_mutex_lock(&slab_lock);
			bool kept = pool_n[c] < SECRET_POOL_PER_CLASS;
			if (kept) {
				pool[c][pool_n[c]++] = s;
				pool_total++;
			}
			pthread_mutex_unlock(&slab_lock);
			if (kept)
				return;
		}
		sodium_free(s); /* zeroes before unmapping */
	}
}

uint8_t *secret_data(const secret *s)
{
	return s ? (uint8_t *)s->data : NULL;
}

size_t secret_len(const secret *s)
{
	if (!s)
		return 0;
	return s->small_len == SECRET_LARGE ? s->u.len : s->small_len;
}

void *secret_bytes_alloc(size_t n)
{
	secret *s = secret_new(n);
	return s ? s->data : NULL;
}

void secret_bytes_free(void *p)
{
	if (p)
		secret_unref((secret *)(void *)((uint8_t *)p - SECRET_HEADER_BYTES));
}

void secret_get_stats(struct secret_stats *st)
{
	st->live = atomic_load_explicit(&n_live, memory_order_relaxed);
	st->slabs = atomic_load_explicit(&n_slabs, memory_order_relaxed);
	st->regions = atomic_load_explicit(&n_regions, memory_order_relaxed);
	st->slab_resets = atomic_load_explicit(&n_resets, memory_order_relaxed);
	st->pool_hits = atomic_load_explicit(&n_pool_hits, memory_order_relaxed);
	pthread_mutex_lock(&slab_lock);
	st->pooled = pool_total;
	pthread_mutex_unlock(&slab_lock);
}

void secret_pool_drain(void)
{
	pthread_mutex_lock(&slab_lock);
	for (int c = 0; c < SECRET_POOL_CLASSES; c++)
		while (pool_n[c])
			sodium_free(pool[c][--pool_n[c]]);
	pool_total = 0;
	pthread_mutex_unlock(&slab_lock);
}
