/* scan: the environment of running processes (/proc/PID/environ), grouped by cgroup: the same
 * variable with the same value in one cgroup is one finding. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "client/scan.h"
#include "client/scan_internal.h"
#include "common/secret.h"

/* ---- /proc ---- */

static char *read_small(const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *b = malloc(max + 1);
	size_t n = 0;
	while (b && n < max) {
		ssize_t r = read(fd, b + n, max - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (b)
		b[n] = '\0';
	return b;
}

static char *cgroup_of(const char *cg)
{
	/* "0::/path" (v2), else the first line's path */
	const char *line = cg, *pick = NULL;
	while (line && *line) {
		const char *nl = strchr(line, '\n');
		if (!strncmp(line, "0::", 3)) {
			pick = line;
			break;
		}
		if (!pick)
			pick = line;
		line = nl ? nl + 1 : NULL;
	}
	if (!pick)
		return strdup("?");
	const char *p = strchr(pick, ':');
	p = p ? strchr(p + 1, ':') : NULL;
	p = p ? p + 1 : pick;
	size_t l = strcspn(p, "\n");
	return scan_clean_copy(p, l, 1024);
}

static char *container_id(const char *cg)
{
	size_t run = 0;
	for (size_t i = 0;; i++) {
		char c = cg[i];
		bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
		if (hex) {
			run++;
			continue;
		}
		if (run == 64)
			return strndup(cg + i - 64, 64);
		run = 0;
		if (!c)
			return NULL;
	}
}

struct proc_ctx {
	struct scan_report *r;
	const char *environ_path;
	int pid;
	char *comm, *cgroup, *container;
	uint8_t key[crypto_generichash_KEYBYTES];
};

static int proc_var(struct proc_ctx *pc, const char *name, size_t nlen, const char *val,
                    size_t vlen, unsigned idx)
{
	struct scan_report *r = pc->r;
	struct scan_verdict v;
	if (!scan_judge(name, nlen, val, vlen, &v))
		return 0;
	uint8_t h[16];
	crypto_generichash(h, sizeof(h), (const uint8_t *)val, vlen, pc->key, sizeof(pc->key));
	for (size_t i = 0; i < r->n; i++) {
		struct scan_finding *o = &r->f[i];
		if (o->pid && !strcmp(o->cgroup, pc->cgroup) && strlen(o->variable) == nlen &&
		    !memcmp(o->variable, name, nlen) && !memcmp(o->vhash, h, sizeof(h))) {
			o->also++;
			return 0;
		}
	}
	size_t before = r->n;
	int e = scan_report_var(r, pc->environ_path, idx, name, nlen, val, vlen, false);
	if (e < 0 || r->n == before)
		return e;
	struct scan_finding *f = &r->f[r->n - 1];
	memcpy(f->vhash, h, sizeof(h));
	f->pid = pc->pid;
	f->comm = strdup(pc->comm);
	f->cgroup = strdup(pc->cgroup);
	f->container = pc->container ? strdup(pc->container) : NULL;
	if (!f->comm || !f->cgroup || (pc->container && !f->container))
		return -ENOMEM;
	return 0;
}

static int proc_one(struct proc_ctx *pc, const char *root, int pid)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%d/environ", root, pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* gone, or not ours to read */
	char *b = secret_bytes_alloc(SCAN_PROC_ENVIRON_MAX + 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	size_t n = 0;
	while (n < SCAN_PROC_ENVIRON_MAX) {
		ssize_t r = read(fd, b + n, SCAN_PROC_ENVIRON_MAX - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	b[n] = '\0';
	char p2[512];
	snprintf(p2, sizeof(p2), "%s/%d/comm", root, pid);
	char *comm = read_small(p2, 64);
	snprintf(p2, sizeof(p2), "%s/%d/cgroup", root, pid);
	char *cg = read_small(p2, 16384);
	pc->pid = pid;
	pc->environ_path = path;
	pc->comm = comm ? scan_clean_copy(comm, strcspn(comm, "\n"), 64) : strdup("?");
	pc->cgroup = cgroup_of(cg ? cg : "");
	pc->container = pc->cgroup ? container_id(pc->cgroup) : NULL;
	int ret = (!pc->comm || !pc->cgroup) ? -ENOMEM : 0;
	unsigned idx = 0;
	for (size_t i = 0; i < n && ret == 0;) {
		size_t l = strnlen(b + i, n - i);
		idx++;
		const char *eq = memchr(b + i, '=', l);
		if (eq && eq > b + i)
			ret = proc_var(pc, b + i, (size_t)(eq - (b + i)), eq + 1,
			               l - (size_t)(eq - (b + i)) - 1, idx);
		i += l + 1;
	}
	secret_bytes_free(b);
	free(comm);
	free(cg);
	free(pc->comm);
	free(pc->cgroup);
	free(pc->container);
	pc->comm = pc->cgroup = pc->container = NULL;
	return ret;
}

int scan_proc(struct scan_report *r, const char *proc_root)
{
	DIR *d = opendir(proc_root);
	if (!d)
		return -errno;
	struct proc_ctx pc = {.r = r};
	randombytes_buf(pc.key, sizeof(pc.key));
	int self = (int)getpid(), ret = 0;
	struct dirent *de;
	while ((de = readdir(d)) && ret == 0) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid > INT32_MAX || pid == self)
			continue;
		ret = proc_one(&pc, proc_root, (int)pid);
	}
	closedir(d);
	sodium_memzero(pc.key, sizeof(pc.key));
	return ret;
}
