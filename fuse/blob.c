/* sfs: blobs, the reference-counted secret values every mount shows. */
#define FUSE_USE_VERSION 35
#include "fuse/sfs_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Small values share slabs: one sodium_malloc region costs three mappings (guard, data, guard),
 * and a process gets about 65,000 mappings (vm.max_map_count), so one region per value would stop
 * a broker near 20,000 values. A slab is a SFS_SLAB_BYTES sodium_malloc region cut by a bump
 * pointer into values of at most SFS_SLAB_VALUE_MAX bytes; each value is wiped when its blob is
 * freed, the region when its last value is gone. Larger values get a region of their own. */
struct sfs_slab {
	atomic_long live; /* values in it, +1 while it is the slab being filled */
	size_t used;
	uint8_t *mem; /* sodium_malloc(SFS_SLAB_BYTES) */
};

static pthread_mutex_t slab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sfs_slab *slab_cur; /* the slab being filled */

static void slab_put(struct sfs_slab *sl)
{
	if (sl && atomic_fetch_sub_explicit(&sl->live, 1, memory_order_acq_rel) == 1) {
		sodium_free(sl->mem); /* zeroes before unmapping */
		free(sl);
	}
}

/* Space for len bytes (rounded up to 16) in the current slab, or a new one. NULL on ENOMEM. */
static uint8_t *slab_alloc(size_t len, struct sfs_slab **out)
{
	size_t need = (len + 15) & ~(size_t)15;
	if (!need)
		need = 16;
	pthread_mutex_lock(&slab_lock);
	if (!slab_cur || slab_cur->used + need > SFS_SLAB_BYTES) {
		struct sfs_slab *sl = calloc(1, sizeof(*sl));
		uint8_t *mem = sl ? sodium_malloc(SFS_SLAB_BYTES) : NULL;
		if (!mem) {
			free(sl);
			pthread_mutex_unlock(&slab_lock);
			return NULL;
		}
		sl->mem = mem;
		atomic_init(&sl->live, 1);
		struct sfs_slab *old = slab_cur;
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

sfs_blob *sfs_blob_new(const uint8_t *data, size_t len, uint64_t version)
{
	if (sodium_init() < 0)
		return NULL;
	if (len && !data)
		return NULL;
	sfs_blob *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	if (len <= SFS_SLAB_VALUE_MAX)
		b->data = slab_alloc(len, &b->slab);
	else
		b->data = sodium_malloc(len);
	if (!b->data) {
		free(b);
		return NULL;
	}
	if (len)
		memcpy(b->data, data, len);
	b->len = len;
	b->version = version;
	atomic_init(&b->ref, 1);
	return b;
}

sfs_blob *sfs_blob_ref(sfs_blob *b)
{
	if (b)
		atomic_fetch_add_explicit(&b->ref, 1, memory_order_relaxed);
	return b;
}

void sfs_blob_unref(sfs_blob *b)
{
	if (!b)
		return;
	if (atomic_fetch_sub_explicit(&b->ref, 1, memory_order_acq_rel) != 1)
		return;
	if (b->slab) {
		sodium_memzero(b->data, b->len);
		slab_put(b->slab);
	} else {
		sodium_free(b->data); /* zeroes before unmapping */
	}
	free(b);
}

size_t sfs_blob_len(const sfs_blob *b)
{
	return b ? b->len : 0;
}

uint64_t sfs_blob_version(const sfs_blob *b)
{
	return b ? b->version : 0;
}
