/* secret: the one type for plaintext (secret values, keys, rendered templates, request and
 * response bodies that may hold a secret), shared by daemon and clients.
 *
 * A secret is an immutable-size, reference-counted byte buffer in sodium_malloc memory: locked
 * (mlock: never swapped), kept out of core dumps, wiped when its last reference goes. Thread-safe
 * (ref/unref are atomic; allocation takes a lock).
 *
 * Small values are cheap: one sodium_malloc region costs three mappings (guard, data, guard) and a
 * process gets about 65,000 mappings (vm.max_map_count), so one region per value would stop a
 * broker near 20,000 values. Secrets of at most SECRET_SLAB_VALUE_MAX bytes are therefore packed,
 * header included, into shared SECRET_SLAB_BYTES regions by a bump pointer: each one is wiped when
 * its last reference goes, its slab is unmapped (and wiped by sodium_free) when its last secret is
 * gone, and the slab being filled starts again from its beginning when all of its secrets are
 * gone. A slab is guarded at its two ends only: an overflow inside one reaches its neighbours
 * rather than a guard page. Larger secrets get a region of their own.
 *
 * Larger secrets up to SECRET_POOL_MAX bytes (header included) get a region of a power-of-two
 * size class (4 to 64 KiB), and a region whose secret is gone is wiped at once and kept for the
 * next secret of its class (at most SECRET_POOL_PER_CLASS per class, 248 KiB in all), so that
 * a reply buffer per request (the workload API's value, a client's answer) costs no mmap,
 * mprotect and mlock each time. Such a region's end guard page is after its class size: an
 * overflow into the slack is not caught, as inside a slab.
 *
 * Constructors return NULL (errno ENOMEM or EINVAL) instead of an errno, like malloc. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define SECRET_SLAB_BYTES (32 * 1024)   /* one shared locked region (16 bytes go to libsodium) */
#define SECRET_SLAB_VALUE_MAX 2048      /* largest secret packed into a slab (bytes of data) */
#define SECRET_HEADER_BYTES 16          /* bookkeeping stored in front of the data, locked too */
#define SECRET_POOL_MIN ((size_t)4096)  /* smallest pooled region (bytes, header included) */
#define SECRET_POOL_MAX ((size_t)65536) /* largest pooled region */
#define SECRET_POOL_PER_CLASS 2         /* wiped regions kept per size class */

typedef struct secret secret;

/* A new secret of len bytes (0 is fine), zeroed, refcount 1; the caller owns that reference and
 * fills it through secret_data. NULL on ENOMEM (errno set). */
secret *secret_new(size_t len);
/* A new secret holding a copy of the len bytes at p (refcount 1). NULL on ENOMEM, or EINVAL when
 * p is NULL and len is not 0. */
secret *secret_from(const void *p, size_t len);
/* Adds a reference; returns s. NULL is passed through. */
secret *secret_ref(secret *s);
/* Drops a reference; the last one wipes the bytes and frees. NULL is a no-op. */
void secret_unref(secret *s);
/* The bytes (secret_len of them; valid while a reference is held). NULL for s NULL. Writable:
 * whoever created the secret fills it before sharing it; once shared, nobody writes to it. */
uint8_t *secret_data(const secret *s);
/* Its length in bytes; 0 for s NULL. */
size_t secret_len(const secret *s);

static inline void secret_unrefp(secret **s)
{
	secret_unref(*s);
}
#define _cleanup_secret_ __attribute__((cleanup(secret_unrefp)))

/* The same memory for code that keeps a bare pointer (crypt_alloc/crypt_free, buffers grown by
 * hand): secret_bytes_alloc(n) is secret_data(secret_new(n)), and secret_bytes_free(p) drops that
 * secret (p must come from secret_bytes_alloc; NULL is a no-op). */
void *secret_bytes_alloc(size_t n);
void secret_bytes_free(void *p);
static inline void secret_bytes_freep(void *p)
{
	secret_bytes_free(*(void **)p);
}
#define _cleanup_secret_bytes_ __attribute__((cleanup(secret_bytes_freep)))

/* Counters for tests and /metrics (a snapshot; other threads may change them meanwhile). */
struct secret_stats {
	uint64_t live;        /* secrets not yet freed */
	uint64_t slabs;       /* slab regions mapped now */
	uint64_t regions;     /* own regions (large secrets) mapped now */
	uint64_t slab_resets; /* times the slab being filled started again from its beginning */
	uint64_t pooled;      /* wiped regions kept for reuse now (not counted in regions) */
	uint64_t pool_hits;   /* large secrets given a pooled region */
};
void secret_get_stats(struct secret_stats *st);
/* Frees every pooled region (tests; a process never needs to). */
void secret_pool_drain(void);
