/* sfs: a grow-only string -> u64 map (open addressing, keys owned), for paths and inodes. */
#include "fuse/sfs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t smap_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

struct smap_slot *sfs_smap_find(const struct smap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = smap_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].key)
			return NULL;
		if (!strcmp(m->slots[i].key, key))
			return &m->slots[i];
	}
}

static int smap_grow(struct smap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	struct smap_slot *s = calloc(cap, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t j = 0; j < m->cap; j++) {
		if (!m->slots[j].key)
			continue;
		size_t i = smap_hash(m->slots[j].key) & (cap - 1);
		while (s[i].key)
			i = (i + 1) & (cap - 1);
		s[i] = m->slots[j];
	}
	free(m->slots);
	m->slots = s;
	m->cap = cap;
	return 0;
}

/* Inserts key (copied) with val; the key must not be present. */
int sfs_smap_put(struct smap *m, const char *key, size_t keylen, uint64_t val)
{
	if ((m->n + 1) * 2 > m->cap && smap_grow(m) < 0)
		return -ENOMEM;
	char *k = strndup(key, keylen);
	if (!k)
		return -ENOMEM;
	size_t i = smap_hash(k) & (m->cap - 1);
	while (m->slots[i].key)
		i = (i + 1) & (m->cap - 1);
	m->slots[i].key = k;
	m->slots[i].val = val;
	m->n++;
	return 0;
}

void sfs_smap_free(struct smap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	m->slots = NULL;
	m->cap = m->n = 0;
}
