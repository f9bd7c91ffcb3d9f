/* scan: reading the files named on the command line and walking directories (no symlinks
 * followed, VCS directories skipped), each file judged into the report. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/scan.h"
#include "client/scan_internal.h"
#include "common/secret.h"

/* ---- reading and walking ---- */

int scan_read_file(int dirfd, const char *path, bool nofollow, char **out, size_t *len)
{
	int fd = openat(dirfd, path,
	                O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		close(fd);
		return e;
	}
	if ((uint64_t)st.st_size > SCAN_FILE_MAX) {
		close(fd);
		return -EFBIG;
	}
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *b = secret_bytes_alloc(cap + 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			close(fd);
			secret_bytes_free(b);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) { /* grew while we read */
			close(fd);
			secret_bytes_free(b);
			return -EFBIG;
		}
	}
	close(fd);
	b[n] = '\0';
	*out = b;
	*len = n;
	return 0;
}

static void warn(struct scan_report *r, const char *path, const char *what)
{
	r->warnings++;
	if (!r->quiet)
		fprintf(stderr, "secretctl: scan: %s: %s; skipped\n", path, what);
}

static int scan_one(struct scan_report *r, int dirfd, const char *name, const char *path,
                    enum scan_file_kind kind, bool nofollow, bool explicit)
{
	char *buf = NULL;
	size_t len = 0;
	int e = scan_read_file(dirfd, name, nofollow, &buf, &len);
	if (e < 0) {
		if (explicit) {
			r->io_error = true;
			if (!r->quiet)
				fprintf(stderr, "secretctl: scan: %s: %s\n", path,
				        e == -EFBIG ? "file too large" : strerror(-e));
			return e;
		}
		warn(r, path, e == -EFBIG ? "file too large" : strerror(-e));
		return 0;
	}
	const char *why = NULL;
	e = scan_buffer(kind, path, buf, len, NULL, scan_report_var, r, &why);
	secret_bytes_free(buf);
	if (e == -ENOMEM)
		return e;
	if (e < 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "cannot parse (%s)",
		         why           ? why
		         : e == -EFBIG ? "too large"
		                       : strerror(-e));
		warn(r, path, msg);
	}
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool skip_dir(const char *n)
{
	return !strcmp(n, ".git") || !strcmp(n, "node_modules") || !strcmp(n, ".hg") ||
	       !strcmp(n, ".svn");
}

static char *join(const char *dir, const char *name)
{
	size_t dl = strlen(dir);
	bool slash = dl > 0 && dir[dl - 1] == '/';
	char *p = NULL;
	if (asprintf(&p, "%s%s%s", dir, slash ? "" : "/", name) < 0)
		return NULL;
	return p;
}

/* Walks the directory open at dfd (owned: closed here). */
static int walk(struct scan_report *r, int dfd, const char *path, int depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = -errno;
		close(dfd);
		warn(r, path, strerror(-e));
		return 0;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			char **nn = realloc(names, nc * sizeof(*nn));
			if (!nn) {
				ret = -ENOMEM;
				break;
			}
			names = nn;
			cap = nc;
		}
		if (!(names[n] = strdup(de->d_name))) {
			ret = -ENOMEM;
			break;
		}
		n++;
	}
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct stat st;
		if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		char *sub = join(path, names[i]);
		if (!sub) {
			ret = -ENOMEM;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			if (!skip_dir(names[i])) {
				if (depth >= SCAN_DEPTH_MAX) {
					warn(r, sub, "too deep");
				} else {
					int cfd =
					    openat(dirfd(d), names[i],
					           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
					if (cfd < 0)
						warn(r, sub, strerror(errno));
					else
						ret = walk(r, cfd, sub, depth + 1);
				}
			}
		} else if (S_ISREG(st.st_mode)) {
			enum scan_file_kind k = scan_file_kind(names[i]);
			if (k != SCAN_FILE_NONE)
				ret = scan_one(r, dirfd(d), names[i], sub, k, true, false);
		}
		free(sub);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return ret;
}

int scan_path(struct scan_report *r, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		int e = -errno;
		r->io_error = true;
		if (!r->quiet)
			fprintf(stderr, "secretctl: scan: %s: %s\n", path, strerror(-e));
		return e;
	}
	if (S_ISDIR(st.st_mode)) {
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			int e = -errno;
			r->io_error = true;
			if (!r->quiet)
				fprintf(stderr, "secretctl: scan: %s: %s\n", path, strerror(-e));
			return e;
		}
		return walk(r, fd, path, 0);
	}
	enum scan_file_kind k = scan_file_kind(path);
	return scan_one(r, AT_FDCWD, path, path, k == SCAN_FILE_NONE ? SCAN_FILE_DOTENV : k, false,
	                true);
}
