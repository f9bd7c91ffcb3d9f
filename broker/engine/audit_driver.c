#include "broker/engine/audit_driver.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "broker/os/ident.h"
#include "broker/os/procwatch.h"
#include "broker/os/reserve.h"

#define AUDIT_DRIVER_RESERVE_POLL_MS 500
#define AUDIT_DRIVER_PRUNE_RETRY_MS 5000

struct audit_driver {
	audit *au;
	struct audit_driver_config cfg;
	bool reserve_out; /* released on ENOSPC: audit writes wait until it can be remade */
	bool was_failing;
	int64_t prune_at; /* audit_driver_mono_ms() of the next prune check */
	uint64_t pruned_run;
};

static int64_t audit_driver_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void audit_driver_report(audit_driver *d, enum audit_driver_event ev, uint64_t a, uint64_t b,
                                int err)
{
	if (d->cfg.report)
		d->cfg.report(d->cfg.report_ud, ev, d->cfg.state_dir, a, b, err);
}

int audit_driver_open_gate(void *ud)
{
	audit_driver *d = ud;
	return audit_admit(d->au);
}

void audit_driver_on_open(void *ud, const struct mounts_open_event *ev)
{
	audit_driver *d = ud;
	char buf[PROCWATCH_EXE_MAX];
	const char *exe = ev->exe; /* from procwatch: cached until the opener execs or exits */
	if (!exe)
		exe = ident_exe(ev->pid, buf, sizeof(buf)) == 0 ? buf : "";
	struct store_audit a = {.actor = ev->actor,
	                        .pid = ev->pid,
	                        .exe = exe,
	                        .action = "fuse-open",
	                        .secret = ev->secret,
	                        .version = ev->version,
	                        .result = ev->result == 0         ? "ok"
	                                  : ev->result == -EACCES ? "denied"
	                                                          : "error"};
	int r = audit_add(d->au, &a);
	if (r < 0 && ev->result != 0 && audit_failing(d->au))
		return; /* refused by the open gate: recorded as refused */
	if (r < 0)
		audit_driver_report(d, AUDIT_DRIVER_OPEN_UNRECORDED, 0, 0, r);
}

static int audit_driver_flush_prepare(loop *l, void *ud)
{
	audit_driver *d = ud;
	int due = audit_due_ms(d->au);
	if (due != 0)
		return due;
	int r;
	uint64_t reserve = d->cfg.reserve;
	if (d->reserve_out) {
		/* Writes wait until the disk has room for the reserve and as much again: opens
		 * must not eat the space kept for key operations. */
		uint64_t avail = 0;
		r = reserve_avail(d->cfg.state_dir, &avail);
		if (r == 0 && avail >= 2 * reserve)
			r = reserve_make(d->cfg.state_dir, reserve);
		else if (r == 0)
			r = -ENOSPC;
		if (r < 0) {
			audit_driver_report(d, AUDIT_DRIVER_DISK_HOLD, avail, 2 * reserve, r);
			return AUDIT_DRIVER_RESERVE_POLL_MS;
		}
		d->reserve_out = false;
		audit_driver_report(d, AUDIT_DRIVER_RESERVE_REMADE, reserve, 0, 0);
	}
	r = audit_flush(d->au);
	if (r < 0) {
		struct audit_stats st;
		audit_get_stats(d->au, &st);
		d->was_failing = true;
		audit_driver_report(d, AUDIT_DRIVER_WRITE_FAILED, st.pending, st.refused, r);
		if (r == -ENOSPC && reserve && !d->reserve_out) {
			int rr = reserve_release(d->cfg.state_dir);
			if (rr == 0 || rr == -ENOENT) {
				d->reserve_out = true;
				audit_driver_report(d, AUDIT_DRIVER_RESERVE_RELEASED, reserve, 0,
				                    0);
			} else {
				audit_driver_report(d, AUDIT_DRIVER_RESERVE_RELEASE_FAILED, 0, 0,
				                    rr);
			}
		}
		due = audit_due_ms(d->au);
		return due < 0 ? AUDIT_FLUSH_MS : due;
	}
	if (d->was_failing) {
		struct audit_stats st;
		audit_get_stats(d->au, &st);
		audit_driver_report(d, AUDIT_DRIVER_WRITABLE_AGAIN, st.refused, 0, 0);
		d->was_failing = false;
	}
	return -1;
}

static int audit_driver_prune_prepare(loop *l, void *ud)
{
	audit_driver *d = ud;
	int64_t wait = d->prune_at - audit_driver_mono_ms();
	if (wait > 0)
		return (int)wait;
	uint64_t n = 0;
	bool more = false;
	int r = audit_prune_step(d->au, &n, &more);
	if (r < 0) {
		audit_driver_report(d, AUDIT_DRIVER_PRUNE_FAILED, 0, 0, r);
		d->prune_at = audit_driver_mono_ms() + AUDIT_DRIVER_PRUNE_RETRY_MS;
		return AUDIT_DRIVER_PRUNE_RETRY_MS;
	}
	d->pruned_run += n;
	if (more)
		return 0;
	if (d->pruned_run)
		audit_driver_report(d, AUDIT_DRIVER_PRUNED, d->pruned_run, 0, 0);
	d->pruned_run = 0;
	int64_t every = d->cfg.keep_s ? d->cfg.keep_s * 1000 / 2 : 60000;
	if (every < 1000)
		every = 1000;
	if (every > 60000)
		every = 60000;
	d->prune_at = audit_driver_mono_ms() + every;
	return (int)every;
}

int audit_driver_start(audit_driver **out, loop *l, audit *au,
                       const struct audit_driver_config *cfg)
{
	if (!out || !l || !au || !cfg || !cfg->state_dir)
		return -EINVAL;
	audit_driver *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->au = au;
	d->cfg = *cfg;
	int r = loop_add_prepare(l, audit_driver_flush_prepare, d);
	if (r == 0 && (cfg->keep_s || cfg->keep_max)) {
		audit_set_retention(au, cfg->keep_s, cfg->keep_max);
		r = loop_add_prepare(l, audit_driver_prune_prepare, d);
	}
	if (r < 0) {
		free(d);
		return r;
	}
	if (cfg->reserve) {
		r = reserve_make(cfg->state_dir, cfg->reserve);
		if (r < 0)
			audit_driver_report(d, AUDIT_DRIVER_RESERVE_MAKE_FAILED, cfg->reserve, 0,
			                    r);
	} else if ((r = reserve_release(cfg->state_dir)) < 0 && r != -ENOENT) {
		audit_driver_report(d, AUDIT_DRIVER_RESERVE_REMOVE_FAILED, 0, 0, r);
	}
	*out = d;
	return 0;
}

void audit_driver_free(audit_driver *d)
{
	free(d);
}
