/* sfs: blobs, the reference-counted secret values every mount shows. The bytes are a common/secret
 * (locked, small ones packed into shared slabs); a blob adds the version and its own count. */
#include "fuse/sfs_internal.h"

#include <errno.h>
#include <stdlib.h>

_Static_assert(SFS_SLAB_BYTES == SECRET_SLAB_BYTES, "sfs.h and secret.h agree");
_Static_assert(SFS_SLAB_VALUE_MAX == SECRET_SLAB_VALUE_MAX, "sfs.h and secret.h agree");

sfs_blob *sfs_blob_wrap(secret *s, uint64_t version)
{
	if (!s) {
		errno = EINVAL;
		return NULL;
	}
	sfs_blob *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->s = secret_ref(s);
	b->version = version;
	atomic_init(&b->ref, 1);
	return b;
}

sfs_blob *sfs_blob_new(const uint8_t *data, size_t len, uint64_t version)
{
	_cleanup_secret_ secret *s = secret_from(data, len);
	return s ? sfs_blob_wrap(s, version) : NULL;
}

sfs_blob *sfs_blob_ref(sfs_blob *b)
{
	if (b)
		atomic_fetch_add_explicit(&b->ref, 1, memory_order_relaxed);
	return b;
}

void sfs_blob_unref(sfs_blob *b)
{
	if (!b || atomic_fetch_sub_explicit(&b->ref, 1, memory_order_acq_rel) != 1)
		return;
	secret_unref(b->s);
	free(b);
}

size_t sfs_blob_len(const sfs_blob *b)
{
	return b ? secret_len(b->s) : 0;
}

bool sfs_blob_shared(const sfs_blob *b)
{
	return b && atomic_load_explicit(&b->ref, memory_order_acquire) > 1;
}

uint64_t sfs_blob_version(const sfs_blob *b)
{
	return b ? b->version : 0;
}

secret *sfs_blob_secret(const sfs_blob *b)
{
	return b ? b->s : NULL;
}
