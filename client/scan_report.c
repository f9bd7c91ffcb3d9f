/* scan: the report: a judged variable added as a finding (never its value, only the masked form),
 * the findings as text or JSON, sorted, freed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/scan.h"
#include "client/scan_internal.h"

#define SCAN_VAR_SHOW_MAX 128 /* bytes of a variable name kept for output */

/* ---- findings ---- */

char *scan_clean_copy(const char *s, size_t len, size_t max)
{
	bool cut = len > max;
	if (cut)
		len = max;
	char *o = malloc(len + (cut ? 4 : 1));
	if (!o)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		o[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (cut)
		memcpy(o + len, "...", 3);
	o[len + (cut ? 3 : 0)] = '\0';
	return o;
}

static struct scan_finding *report_add(struct scan_report *r)
{
	if (r->n >= SCAN_FINDINGS_MAX)
		return NULL;
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 32;
		struct scan_finding *nf = realloc(r->f, nc * sizeof(*nf));
		if (!nf)
			return NULL;
		r->f = nf;
		r->cap = nc;
	}
	struct scan_finding *f = &r->f[r->n];
	memset(f, 0, sizeof(*f));
	return f;
}

int scan_report_var(void *ctx, const char *file, unsigned line, const char *name, size_t nlen,
                    const char *val, size_t vlen, bool map_form)
{
	struct scan_report *r = ctx;
	struct scan_verdict v;
	if (!scan_judge(name, nlen, val, vlen, &v))
		return 0;
	struct scan_finding *f = report_add(r);
	if (!f)
		return r->n >= SCAN_FINDINGS_MAX ? 0 : -ENOMEM;
	f->file = scan_clean_copy(file, strlen(file), 4096);
	f->variable = scan_clean_copy(name, nlen, SCAN_VAR_SHOW_MAX);
	if (!f->file || !f->variable) {
		free(f->file);
		free(f->variable);
		return -ENOMEM;
	}
	f->line = line;
	f->reason = v.reason;
	f->kind = v.kind;
	scan_mask(val, vlen, f->masked);
	r->n++;
	return 0;
}

/* ---- output ---- */

const char *scan_format(const struct scan_finding *f, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s:%u: %s: %s: %s", f->file, f->line, f->variable, f->reason,
	                 f->masked);
	if (f->pid && n >= 0 && (size_t)n < len) {
		if (f->also)
			snprintf(buf + n, len - (size_t)n, " (%s; and %u more process%s)", f->comm,
			         f->also, f->also == 1 ? "" : "es");
		else
			snprintf(buf + n, len - (size_t)n, " (%s)", f->comm);
	}
	return buf;
}

json_t *scan_report_json(const struct scan_report *r)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < r->n; i++) {
		const struct scan_finding *f = &r->f[i];
		json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s}", "file", f->file, "line",
		                      (json_int_t)f->line, "variable", f->variable, "reason",
		                      f->reason, "kind", f->kind, "masked", f->masked);
		if (o && f->pid) {
			json_object_set_new(o, "pid", json_integer(f->pid));
			json_object_set_new(o, "comm", json_string(f->comm));
			json_object_set_new(o, "cgroup", json_string(f->cgroup));
			json_object_set_new(o, "container",
			                    f->container ? json_string(f->container) : json_null());
			json_object_set_new(o, "more_processes", json_integer(f->also));
		}
		if (!o || json_array_append_new(a, o) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static int finding_cmp(const void *pa, const void *pb)
{
	const struct scan_finding *a = pa, *b = pb;
	if (!a->pid != !b->pid)
		return a->pid ? 1 : -1;
	if (a->pid) {
		int c = strcmp(a->cgroup, b->cgroup);
		if (c)
			return c;
		if (a->pid != b->pid)
			return a->pid < b->pid ? -1 : 1;
	}
	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return 0;
}

void scan_report_sort(struct scan_report *r)
{
	for (size_t i = 0; i < r->n; i++)
		r->f[i].seq = i;
	if (r->n > 1)
		qsort(r->f, r->n, sizeof(*r->f), finding_cmp);
}

void scan_report_free(struct scan_report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->f[i].file);
		free(r->f[i].variable);
		free(r->f[i].comm);
		free(r->f[i].cgroup);
		free(r->f[i].container);
	}
	free(r->f);
	r->f = NULL;
	r->n = r->cap = 0;
}
