/* mounts: the registry object's life (create, tear down) and its counters. The work is split by
 * job over registry.c, views.c, blobcache.c, mountfs.c and mounts_json.c (see mounts_int.h). */
#include "broker/engine/mounts.h"

#include <errno.h>
#include <stdlib.h>

#include "broker/engine/mounts_int.h"

int mounts_new(mounts **out, loop *l, store *s, const struct mounts_config *cfg)
{
	mounts *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->loop = l;
	m->store = s;
	if (cfg)
		m->cfg = *cfg;
	int r = views_inputs_load(m);
	if (r == 0 && l)
		r = loop_add_prepare(l, views_retry_prepare, m);
	if (r < 0) {
		views_inputs_free(m);
		free(m);
		return r;
	}
	*out = m;
	return 0;
}

static void mounts_free_all(mounts *m, bool unmount)
{
	if (!m)
		return;
	while (m->conts) {
		struct mcont *c = m->conts;
		m->conts = c->next;
		/* At stop: a failed unmount is counted; its stale mount serves nothing. */
		mountfs_unmount(c, unmount);
		registry_cont_free(c);
	}
	blobcache_free(&m->blobs);
	rendered_free(&m->renders);
	views_inputs_free(m);
	free(m);
}

void mounts_free(mounts *m)
{
	mounts_free_all(m, true);
}

void mounts_release(mounts *m)
{
	mounts_free_all(m, false);
}

void mounts_get_stats(mounts *m, struct mounts_stats *st)
{
	*st = m->st;
	st->containers = m->ncont;
	st->failed_closed = m->nfailed;
	st->mounted = 0;
	st->files = 0;
	for (struct mcont *c = m->conts; c; c = c->next)
		if (c->fs) {
			st->mounted++;
			st->files += c->nfiles;
		}
}
