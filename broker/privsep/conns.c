/* conns.c: the daemon's table of the server's connections, by handle (see conns.h). */
#include "broker/privsep/conns.h"

#include <errno.h>
#include <stdlib.h>

struct privsep_slot {
	void *v;      /* NULL: free */
	uint32_t gen; /* the generation of the handle it was given under */
};

struct privsep_conns {
	struct privsep_slot *slot;
	unsigned *free; /* a stack of free slot indexes */
	unsigned max, nfree;
	uint32_t gen; /* the last generation given out */
};

int privsep_conns_new(privsep_conns **out, unsigned max)
{
	if (max == 0 || max > PRIVSEP_CONNS_MAX)
		return -EINVAL;
	struct privsep_conns *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->slot = calloc(max, sizeof(*t->slot));
	t->free = calloc(max, sizeof(*t->free));
	if (!t->slot || !t->free) {
		privsep_conns_free(t);
		return -ENOMEM;
	}
	t->max = max;
	/* the lowest slot first */
	for (unsigned i = 0; i < max; i++)
		t->free[i] = max - 1 - i;
	t->nfree = max;
	*out = t;
	return 0;
}

void privsep_conns_free(privsep_conns *t)
{
	if (!t)
		return;
	free(t->slot);
	free(t->free);
	free(t);
}

int privsep_conns_add(privsep_conns *t, void *v, uint64_t *handle)
{
	if (!v)
		return -EINVAL;
	if (t->nfree == 0)
		return -ENOSPC;
	unsigned i = t->free[--t->nfree];
	if (++t->gen == 0)
		t->gen = 1;
	t->slot[i].v = v;
	t->slot[i].gen = t->gen;
	*handle = (uint64_t)t->gen << 32 | i;
	return 0;
}

static struct privsep_slot *privsep_conns_find(const privsep_conns *t, uint64_t handle)
{
	uint64_t i = handle & 0xffffffffu;
	uint32_t gen = (uint32_t)(handle >> 32);
	if (gen == 0 || i >= t->max)
		return NULL;
	struct privsep_slot *s = &t->slot[i];
	return s->v && s->gen == gen ? s : NULL;
}

void *privsep_conns_get(const privsep_conns *t, uint64_t handle)
{
	struct privsep_slot *s = privsep_conns_find(t, handle);
	return s ? s->v : NULL;
}

void *privsep_conns_remove(privsep_conns *t, uint64_t handle)
{
	struct privsep_slot *s = privsep_conns_find(t, handle);
	if (!s)
		return NULL;
	void *v = s->v;
	s->v = NULL;
	s->gen = 0;
	t->free[t->nfree++] = (unsigned)(s - t->slot);
	return v;
}

void privsep_conns_drain(privsep_conns *t, void (*fn)(void *v, void *ud), void *ud)
{
	for (unsigned i = 0; i < t->max && t->nfree < t->max; i++)
		if (t->slot[i].v)
			fn(privsep_conns_remove(t, (uint64_t)t->slot[i].gen << 32 | i), ud);
}

unsigned privsep_conns_count(const privsep_conns *t)
{
	return t->max - t->nfree;
}
