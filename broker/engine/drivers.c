#include "broker/engine/drivers.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>

#include "broker/store/anchor.h"

#define DRIVERS_KEYROT_YIELD_MS 20         /* an admin write in flight: the batch waits */
#define DRIVERS_KEYROT_CLUSTER_MAX_MS 2000 /* the longest pause after a cluster failure */

/* Key rotation's state. */
struct drivers_keyrot {
	uint64_t done;    /* data keys re-wrapped by this process */
	int pause_ms;     /* after a failure */
	int64_t retry_at; /* drivers_mono_ms() before which no batch is tried (after a failure) */
	int last_err;
};

/* The audit anchor's state. */
struct drivers_anchor {
	uint64_t gen; /* store_audit_gen when it was last written */
	bool failing;
	int64_t retry_at; /* drivers_mono_ms() before which a failed write is not retried */
};

struct drivers {
	loop *loop;
	struct drivers_config cfg;
	struct drivers_keyrot kr;
	struct drivers_anchor an;
	bool keyrot_hooked, anchor_hooked;
	sched *sched;
	bool pw_armed;    /* procwatch's fd is in the loop */
	int64_t pw_rearm; /* drivers_mono_ms() to put it back */
};

static int64_t drivers_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void drivers_report(drivers *d, enum drivers_event ev, uint64_t a, uint64_t b, int err)
{
	if (d->cfg.report)
		d->cfg.report(d->cfg.report_ud, ev, d->cfg.anchor_path, a, b, err);
}

static int drivers_keyrot_prepare(loop *l, void *ud)
{
	drivers *d = ud;
	struct drivers_keyrot *k = &d->kr;
	uint64_t target = store_key_rotating(d->cfg.store);
	if (!target)
		return -1;
	int64_t wait = k->retry_at - drivers_mono_ms();
	if (wait > 0) /* other events wake the loop too: the pause counts from the failure */
		return (int)wait;
	uint64_t n = 0;
	bool finished = false;
	int r = service_key_rotate_step(d->cfg.service, d->cfg.rotate_batch, &n, &finished);
	if (r == -EAGAIN) { /* cluster mode: an admin write goes first */
		k->retry_at = drivers_mono_ms() + DRIVERS_KEYROT_YIELD_MS;
		return DRIVERS_KEYROT_YIELD_MS;
	}
	if (r < 0) {
		if (r != k->last_err)
			drivers_report(d, DRIVERS_KEYROT_FAILED, target, 0, r);
		k->last_err = r;
		/* cluster mode: etcd away or a batch's secret changed meanwhile is retried within
		 * DRIVERS_KEYROT_CLUSTER_MAX_MS (the rotation resumes when etcd is back) */
		int cap =
		    r == -EHOSTUNREACH || r == -ESTALE ? DRIVERS_KEYROT_CLUSTER_MAX_MS : 60000;
		k->pause_ms = k->pause_ms ? (k->pause_ms < cap / 2 ? k->pause_ms * 2 : cap) : 500;
		k->retry_at = drivers_mono_ms() + k->pause_ms;
		return k->pause_ms;
	}
	k->last_err = 0;
	k->pause_ms = 0;
	k->done += n;
	if (!finished)
		return 0;
	drivers_report(d, DRIVERS_KEYROT_DONE, target, k->done, 0);
	k->done = 0;
	return -1;
}

/* Writes the anchor when records were written since the last write; 0, 1 (nothing to do) or
 * the write's -errno. */
static int drivers_anchor_write(drivers *d)
{
	struct drivers_anchor *an = &d->an;
	uint64_t gen = store_audit_gen(d->cfg.store);
	if (gen == an->gen)
		return 1;
	struct anchor a;
	int r = store_audit_anchor(d->cfg.store, &a);
	if (r == 0)
		r = anchor_write(d->cfg.anchor_path, &a);
	if (r < 0) {
		if (!an->failing)
			drivers_report(d, DRIVERS_ANCHOR_WRITE_FAILED, 0, 0, r);
		an->failing = true;
		an->retry_at = drivers_mono_ms() + 1000;
		return r;
	}
	an->failing = false;
	an->gen = gen;
	return 0;
}

static int drivers_anchor_prepare(loop *l, void *ud)
{
	drivers *d = ud;
	if (store_audit_gen(d->cfg.store) == d->an.gen)
		return -1;
	int64_t wait = d->an.retry_at - drivers_mono_ms();
	if (wait > 0)
		return (int)wait;
	return drivers_anchor_write(d) < 0 ? 1000 : -1;
}

static int drivers_anchor_check(drivers *d)
{
	struct anchor a;
	int r = anchor_read(d->cfg.anchor_path, &a);
	if (r == -ENOENT) {
		drivers_report(d, DRIVERS_ANCHOR_NEW, 0, 0, 0);
		d->an.gen = store_audit_gen(d->cfg.store) - 1; /* due now */
		return 0;
	}
	if (r < 0) {
		drivers_report(d, DRIVERS_ANCHOR_BAD, 0, 0, r);
		return r;
	}
	r = store_audit_anchor_check(d->cfg.store, &a);
	if (r < 0) {
		drivers_report(d,
		               r == -EBADMSG  ? DRIVERS_ANCHOR_FOREIGN
		               : r == -ESTALE ? DRIVERS_ANCHOR_STALE
		                              : DRIVERS_ANCHOR_CHECK_FAILED,
		               a.seq, 0, r);
		return r;
	}
	d->an.gen = store_audit_gen(d->cfg.store) - 1; /* rewrite it now: the chain may be ahead */
	return 0;
}

static void drivers_on_procwatch(loop *l, int fd, uint32_t events, void *ud)
{
	drivers *d = ud;
	int r = procwatch_sync(d->cfg.procwatch);
	if (r < 0)
		drivers_report(d, DRIVERS_PROCWATCH_FAILED, 0, 0, r);
	loop_del(l, fd);
	d->pw_armed = false;
	d->pw_rearm = drivers_mono_ms() + DRIVERS_PROCWATCH_MS;
}

static int drivers_procwatch_prepare(loop *l, void *ud)
{
	drivers *d = ud;
	if (d->pw_armed)
		return -1;
	int64_t left = d->pw_rearm - drivers_mono_ms();
	if (left > 0)
		return (int)left;
	if (loop_add(l, procwatch_fd(d->cfg.procwatch), EPOLLIN, drivers_on_procwatch, d) < 0) {
		d->pw_rearm = drivers_mono_ms() + DRIVERS_PROCWATCH_MS;
		return DRIVERS_PROCWATCH_MS;
	}
	d->pw_armed = true;
	return -1;
}

int drivers_start(drivers **out, loop *l, const struct drivers_config *cfg)
{
	if (!out || !l || !cfg || !cfg->store || !cfg->service || !cfg->rotate_batch ||
	    !cfg->sched_report)
		return -EINVAL;
	drivers *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->loop = l;
	d->cfg = *cfg;
	int r = cfg->anchor_path ? drivers_anchor_check(d) : 0;
	if (r == 0) {
		uint64_t target = store_key_rotating(cfg->store);
		if (target)
			drivers_report(d, DRIVERS_KEYROT_RESUMED, target, 0, 0);
		r = loop_add_prepare(l, drivers_keyrot_prepare, d);
		d->keyrot_hooked = r == 0;
		if (r < 0)
			drivers_report(d, DRIVERS_LOOP_FAILED, 0, 0, r);
	}
	if (r == 0 && cfg->procwatch) {
		r = loop_add_prepare(l, drivers_procwatch_prepare, d);
		if (r < 0)
			drivers_report(d, DRIVERS_LOOP_FAILED, 0, 0, r);
	}
	if (r == 0) {
		r = sched_new(&d->sched, l, cfg->store, cfg->service, cfg->sched_report,
		              cfg->sched_ud);
		if (r < 0)
			drivers_report(d, DRIVERS_SCHED_FAILED, 0, 0, r);
	}
	if (r < 0) {
		drivers_free(d);
		return r;
	}
	*out = d;
	return 0;
}

int drivers_start_anchor(drivers *d)
{
	if (!d->cfg.anchor_path)
		return 0;
	int r = loop_add_prepare(d->loop, drivers_anchor_prepare, d);
	d->anchor_hooked = r == 0;
	if (r < 0)
		drivers_report(d, DRIVERS_LOOP_FAILED, 0, 0, r);
	return r;
}

void drivers_stop(drivers *d)
{
	if (!d)
		return;
	sched_free(d->sched);
	d->sched = NULL;
	if (d->pw_armed)
		loop_del(d->loop, procwatch_fd(d->cfg.procwatch));
	d->pw_armed = false;
}

int drivers_anchor_flush(drivers *d)
{
	if (!d || !d->cfg.anchor_path)
		return 0;
	d->an.failing = false; /* the last chance: a failure is reported */
	int r = drivers_anchor_write(d);
	return r < 0 ? r : 0;
}

void drivers_free(drivers *d)
{
	if (!d)
		return;
	drivers_stop(d);
	/* the loop has no way to remove a prepare hook: it must not run after this (the loop is
	 * freed with the daemon, and never run again) */
	free(d);
}
