/* blobcache: the decrypted secret values shared by every view that shows them, one per
 * (name, previous), decrypted again only when the value it shows changed: another version, or
 * another secret of the same name (struct mver, mounts_int.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/engine/mounts_int.h"
#include "common/secret.h"

static size_t blobcache_hash(const char *name, bool previous)
{
	uint64_t h = 1469598103934665603ULL ^ (previous ? 0x9e3779b97f4a7c15ULL : 0);
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)h;
}

static void blobcache_idx_put(struct blobcache *bc, size_t i)
{
	size_t slot = blobcache_hash(bc->v[i].name, bc->v[i].previous) & (bc->cidx - 1);
	while (bc->idx[slot])
		slot = (slot + 1) & (bc->cidx - 1);
	bc->idx[slot] = i + 1;
}

/* Rebuilds the index for n + 1 entries (at most half full). On ENOMEM the index is dropped and
 * lookups scan (slow, still right). */
static int blobcache_idx_rebuild(struct blobcache *bc)
{
	size_t cap = 64;
	while (cap < 2 * (bc->n + 1))
		cap *= 2;
	free(bc->idx);
	bc->cidx = 0;
	bc->idx = calloc(cap, sizeof(*bc->idx));
	if (!bc->idx)
		return -ENOMEM;
	bc->cidx = cap;
	for (size_t i = 0; i < bc->n; i++)
		blobcache_idx_put(bc, i);
	return 0;
}

static struct mblob *blobcache_find(struct blobcache *bc, const char *name, bool previous)
{
	if (!bc->idx) {
		for (size_t i = 0; i < bc->n; i++)
			if (bc->v[i].previous == previous && strcmp(bc->v[i].name, name) == 0)
				return &bc->v[i];
		return NULL;
	}
	for (size_t i = blobcache_hash(name, previous) & (bc->cidx - 1); bc->idx[i];
	     i = (i + 1) & (bc->cidx - 1)) {
		struct mblob *b = &bc->v[bc->idx[i] - 1];
		if (b->previous == previous && strcmp(b->name, name) == 0)
			return b;
	}
	return NULL;
}

/* Reads and decrypts one version into a new blob (the one place a value leaves the store for
 * the mounts): decrypted once into a secret, which the blob then holds; never copied. */
static int blobcache_load(store *s, const char *name, struct mver ver, sfs_blob **out)
{
	_cleanup_secret_ secret *val = NULL;
	int r = store_get_secret_of(s, name, ver.sid, ver.version, &val);
	if (r < 0)
		return r;
	sfs_blob *nb = sfs_blob_wrap(val, ver.version);
	if (!nb)
		return -ENOMEM;
	*out = nb;
	return 0;
}

static bool blobcache_same(struct mver a, struct mver b)
{
	return a.sid == b.sid && a.version == b.version;
}

int blobcache_get(struct blobcache *bc, store *s, const char *name, bool previous, struct mver ver,
                  sfs_blob **out)
{
	struct mblob *b = blobcache_find(bc, name, previous);
	if (b && blobcache_same(b->ver, ver)) {
		b->used = true;
		*out = b->blob;
		return 0;
	}
	sfs_blob *nb = NULL;
	int r = blobcache_load(s, name, ver, &nb);
	if (r < 0)
		return r;
	if (!b) {
		if (bc->n == bc->cap) {
			size_t nc = bc->cap ? bc->cap * 2 : 16;
			struct mblob *n = realloc(bc->v, nc * sizeof(*n));
			if (!n) {
				sfs_blob_unref(nb);
				return -ENOMEM;
			}
			bc->v = n;
			bc->cap = nc;
		}
		char *dup = strdup(name);
		if (!dup) {
			sfs_blob_unref(nb);
			return -ENOMEM;
		}
		b = &bc->v[bc->n++];
		*b = (struct mblob){.name = dup, .previous = previous};
		if (bc->idx && 2 * (bc->n + 1) <= bc->cidx)
			blobcache_idx_put(bc, bc->n - 1);
		else if (blobcache_idx_rebuild(bc) < 0)
			bc->idx = NULL; /* scans until the next sweep rebuilds it */
	} else {
		sfs_blob_unref(b->blob);
	}
	b->ver = ver;
	b->blob = nb;
	b->used = true;
	*out = nb;
	return 0;
}

sfs_blob *blobcache_peek(struct blobcache *bc, const char *name, bool previous, struct mver ver)
{
	struct mblob *b = blobcache_find(bc, name, previous);
	return b && blobcache_same(b->ver, ver) ? b->blob : NULL;
}

void blobcache_sweep(struct blobcache *bc)
{
	size_t j = 0;
	for (size_t i = 0; i < bc->n; i++) {
		if (bc->v[i].used) {
			bc->v[i].used = false;
			bc->v[j++] = bc->v[i];
		} else {
			sfs_blob_unref(bc->v[i].blob);
			free(bc->v[i].name);
		}
	}
	bc->n = j;
	if (blobcache_idx_rebuild(bc) < 0)
		bc->idx = NULL; /* lookups scan until a rebuild succeeds */
}

void blobcache_sweep_unshared(struct blobcache *bc)
{
	size_t j = 0;
	for (size_t i = 0; i < bc->n; i++) {
		if (sfs_blob_shared(bc->v[i].blob)) {
			bc->v[j++] = bc->v[i];
		} else {
			sfs_blob_unref(bc->v[i].blob);
			free(bc->v[i].name);
		}
	}
	bc->n = j;
	if (blobcache_idx_rebuild(bc) < 0)
		bc->idx = NULL; /* lookups scan until a rebuild succeeds */
}

void blobcache_free(struct blobcache *bc)
{
	for (size_t i = 0; i < bc->n; i++) {
		sfs_blob_unref(bc->v[i].blob);
		free(bc->v[i].name);
	}
	free(bc->v);
	free(bc->idx);
	*bc = (struct blobcache){0};
}
