/* secretd-wl: the workload client for minimal images (busybox, distroless, scratch). Statically
 * linked, no shared library: it speaks HTTP/1.0 over the workload socket by hand (client/wlhttp)
 * and reads the container's mount directly.
 *   secretd-wl read [--dir D] [--socket S] NAME   the value, from D/NAME, else the workload API
 *   secretd-wl ls [--socket S]                    the names granted to this container
 *   secretd-wl exec [--dir D] [--socket S] [--env VAR=NAME]... [--] CMD [ARG]...
 *   secretd-wl wait [--dir D] [--since V] [--timeout SECONDS]
 *                                                 blocks until D/.version changes (from V, when
 *                                                 given: no change can slip in before it starts)
 * Exit: 0; 1 a secret unreadable, the broker unreachable or refusing; 2 usage; 124 wait timed
 * out; 126/127 exec's CMD not executable / not found. Values live in locked (mlock), non-dumpable
 * memory, wiped before exit, and are never printed except by read. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client/wlhttp.h"
#include "common/limits.h"
#include "common/names.h"

#ifndef SECRETD_VERSION
#define SECRETD_VERSION "unknown"
#endif

#define WL_ENV_MAX 64                          /* --env options */
#define WL_VALUE_MAX SECRETD_VALUE_MAX_CEILING /* largest value accepted */
#define WL_RETRIES 6                           /* tries of a request answered 429/503 */
#define WL_ENV_STRING_MAX (128 * 1024)         /* Linux's MAX_ARG_STRLEN: one "VAR=value" */

static const char *wl_prog = "secretd-wl";

static int wl_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int wl_fail(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: ", wl_prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return rc;
}

/* ---- locked buffers: mmap'd, mlock'd, excluded from core dumps, wiped on free ---- */

struct wl_buf {
	uint8_t *p;
	size_t len, cap;
};

static void wl_buf_free(struct wl_buf *b)
{
	if (b->p) {
		explicit_bzero(b->p, b->cap);
		munmap(b->p, b->cap);
	}
	*b = (struct wl_buf){0};
}

static int wl_buf_grow(struct wl_buf *b, size_t need)
{
	if (need <= b->cap)
		return 0;
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t cap = b->cap ? b->cap : 4 * pg;
	while (cap < need)
		cap *= 2;
	void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	/* Best effort where RLIMIT_MEMLOCK is small; never dumped either way. */
	if (mlock(p, cap) < 0 && errno != EPERM && errno != ENOMEM && errno != EAGAIN) {
		munmap(p, cap);
		return -errno;
	}
	madvise(p, cap, MADV_DONTDUMP);
	if (b->len)
		memcpy(p, b->p, b->len);
	size_t len = b->len;
	wl_buf_free(b);
	b->p = p;
	b->cap = cap;
	b->len = len;
	return 0;
}

/* ---- the workload API ---- */

static const char *wl_socket_path(const char *opt)
{
	if (opt)
		return opt;
	const char *e = getenv("SECRETD_WORKLOAD_SOCKET");
	if (!e || !*e)
		e = getenv("SECRETD_SOCKET");
	return e && *e ? e : SECRETD_RUNTIME_DIR_DEFAULT "/" SECRETD_WORKLOAD_SOCK;
}

/* One GET; the whole response in *resp (locked), parsed into *r. 0 or -errno; *why says what
 * failed in words. */
static int wl_get_once(const char *sock, const char *path, struct wl_buf *resp,
                       struct wlhttp_resp *r, const char **why)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(sock) >= sizeof(sa.sun_path)) {
		*why = "socket path too long";
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		*why = rc == -EACCES   ? "permission denied on the socket"
		       : rc == -ENOENT ? "no socket there (is the workload socket mounted?)"
		                       : "cannot connect";
		goto out;
	}
	char req[SECRETD_NAME_MAX + 128];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: secretd\r\n\r\n", path);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	for (size_t off = 0; off < (size_t)n;) {
		ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = -errno;
			*why = "cannot send the request";
			goto out;
		}
		off += (size_t)w;
	}
	resp->len = 0;
	for (;;) {
		if (resp->len == resp->cap && (resp->cap >= WL_VALUE_MAX + WLHTTP_HEAD_MAX ||
		                               wl_buf_grow(resp, resp->cap + 1) < 0)) {
			rc = resp->cap >= WL_VALUE_MAX + WLHTTP_HEAD_MAX ? -EFBIG : -ENOMEM;
			*why = rc == -EFBIG ? "answer too large" : "out of memory";
			goto out;
		}
		ssize_t got = recv(fd, resp->p + resp->len, resp->cap - resp->len, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = -errno;
			*why = "cannot read the answer";
			goto out;
		}
		resp->len += (size_t)got;
		rc = wlhttp_parse((const char *)resp->p, resp->len, got == 0, r);
		if (rc == 0)
			break;
		if (rc != -EAGAIN) {
			*why = "malformed answer";
			goto out;
		}
	}
out:
	close(fd);
	return rc;
}

/* GET with retries of 429/503 (bounded exponential backoff with jitter). */
static int wl_get(const char *sock, const char *path, struct wl_buf *resp, struct wlhttp_resp *r,
                  const char **why)
{
	unsigned delay_ms = 50;
	for (int i = 0;; i++) {
		int rc = wl_get_once(sock, path, resp, r, why);
		if (rc < 0 || (r->status != 429 && r->status != 503) || i + 1 >= WL_RETRIES)
			return rc;
		unsigned jitter = (unsigned)(getpid() + i * 7919) % (delay_ms / 2 + 1);
		struct timespec ts = {.tv_sec = (delay_ms + jitter) / 1000,
		                      .tv_nsec = (long)((delay_ms + jitter) % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		delay_ms = delay_ms * 2 > 2000 ? 2000 : delay_ms * 2;
	}
}

static int wl_broker_error(const char *sock, const struct wl_buf *resp, const struct wlhttp_resp *r)
{
	char msg[256];
	if (wlhttp_error((const char *)resp->p + r->body_off, r->body_len, msg, sizeof(msg)) < 0)
		snprintf(msg, sizeof(msg), "HTTP %d", r->status);
	return wl_fail(1, "secretd at %s: %s", sock, msg);
}

/* The value of secret name: from dir/name when that file can be read, else from the API. On
 * success out holds exactly the value (locked). 0, or an exit status after a message. */
static int wl_value(const char *dir, const char *sock, const char *name, struct wl_buf *out)
{
	const char *why = NULL;
	if (names_check(name, strlen(name), &why) < 0)
		return wl_fail(2, "invalid secret name '%s': %s", name, why);
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = n > 0 && (size_t)n < sizeof(path) ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	if (fd >= 0) {
		out->len = 0;
		for (;;) {
			if (out->len == out->cap &&
			    (out->cap >= WL_VALUE_MAX || wl_buf_grow(out, out->cap + 1) < 0)) {
				close(fd);
				return wl_fail(1, "%s: too large or out of memory", path);
			}
			ssize_t got = read(fd, out->p + out->len, out->cap - out->len);
			if (got < 0 && errno == EINTR)
				continue;
			if (got < 0) {
				int e = errno;
				close(fd);
				return wl_fail(1, "%s: %s", path, strerror(e));
			}
			if (got == 0)
				break;
			out->len += (size_t)got;
		}
		close(fd);
		return 0;
	}
	char url[SECRETD_NAME_MAX + 32];
	snprintf(url, sizeof(url), "/v1/self/secrets/%s", name);
	struct wlhttp_resp r;
	int rc = wl_get(sock, url, out, &r, &why);
	if (rc < 0)
		return wl_fail(1, "%s: not in %s, and secretd at %s: %s", name, dir, sock,
		               why ? why : strerror(-rc));
	if (r.status != 200)
		return wl_broker_error(sock, out, &r);
	memmove(out->p, out->p + r.body_off, r.body_len);
	explicit_bzero(out->p + r.body_len, out->len - r.body_len);
	out->len = r.body_len;
	return 0;
}

/* ---- commands ---- */

struct wl_opts {
	const char *dir, *sock, *since;
	double timeout;
	const char *env[WL_ENV_MAX];
	size_t nenv;
	int rest; /* index of the first operand */
};

static int wl_usage(void)
{
	fprintf(stderr,
	        "usage: %s read [--dir D] [--socket S] NAME\n"
	        "       %s ls [--socket S]\n"
	        "       %s exec [--dir D] [--socket S] [--env VAR=NAME]... [--] CMD [ARG]...\n"
	        "       %s wait [--dir D] [--since V] [--timeout SECONDS]\n"
	        "D defaults to " SECRETD_MOUNT_DEFAULT ", S to $SECRETD_WORKLOAD_SOCKET, "
	        "$SECRETD_SOCKET, then " SECRETD_RUNTIME_DIR_DEFAULT "/" SECRETD_WORKLOAD_SOCK
	        ".\n",
	        wl_prog, wl_prog, wl_prog, wl_prog);
	return 2;
}

/* Options up to the first operand (or "--"). 0, or 2 after a message. */
static int wl_parse(int argc, char **argv, struct wl_opts *o)
{
	*o = (struct wl_opts){.dir = SECRETD_MOUNT_DEFAULT, .timeout = -1};
	int i = 2;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (a[0] != '-')
			break;
		if (i + 1 >= argc)
			return wl_fail(2, "%s needs a value", a);
		const char *v = argv[++i];
		if (!strcmp(a, "--dir")) {
			o->dir = v;
		} else if (!strcmp(a, "--socket")) {
			o->sock = v;
		} else if (!strcmp(a, "--since")) {
			o->since = v;
		} else if (!strcmp(a, "--timeout")) {
			char *end;
			errno = 0;
			o->timeout = strtod(v, &end);
			if (errno || end == v || *end || o->timeout < 0 || o->timeout > 86400 * 365)
				return wl_fail(2, "--timeout: not a number of seconds: '%s'", v);
		} else if (!strcmp(a, "--env")) {
			if (o->nenv == WL_ENV_MAX)
				return wl_fail(2, "at most %d --env options", WL_ENV_MAX);
			o->env[o->nenv++] = v;
		} else {
			return wl_fail(2, "unknown option '%s'", a);
		}
	}
	o->rest = i;
	return 0;
}

static int wl_read(int argc, char **argv, const struct wl_opts *o)
{
	if (o->rest != argc - 1)
		return wl_usage();
	struct wl_buf v = {0};
	int rc = wl_value(o->dir, wl_socket_path(o->sock), argv[o->rest], &v);
	if (rc == 0) {
		for (size_t off = 0; off < v.len;) {
			ssize_t w = write(STDOUT_FILENO, v.p + off, v.len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = wl_fail(1, "writing the value: %s", strerror(errno));
				break;
			}
			off += (size_t)w;
		}
	}
	wl_buf_free(&v);
	return rc;
}

static int wl_print_name(void *ud, const char *name, size_t n)
{
	return printf("%.*s\n", (int)n, name) < 0 ? -EIO : 0;
}

static int wl_ls(int argc, char **argv, const struct wl_opts *o)
{
	if (o->rest != argc)
		return wl_usage();
	const char *sock = wl_socket_path(o->sock);
	struct wl_buf resp = {0};
	struct wlhttp_resp r;
	const char *why = NULL;
	int rc = wl_get(sock, "/v1/self/secrets", &resp, &r, &why);
	if (rc < 0) {
		rc = wl_fail(1, "secretd at %s: %s", sock, why ? why : strerror(-rc));
	} else if (r.status != 200) {
		rc = wl_broker_error(sock, &resp, &r);
	} else if (wlhttp_list((const char *)resp.p + r.body_off, r.body_len, wl_print_name, NULL) <
	           0) {
		rc = wl_fail(1, "secretd at %s: unexpected answer to the list", sock);
	} else {
		rc = fflush(stdout) == 0 ? 0 : wl_fail(1, "writing the list: %s", strerror(errno));
	}
	wl_buf_free(&resp);
	return rc;
}

static bool wl_env_name_ok(const char *s, size_t n)
{
	if (!n || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

static int wl_exec(int argc, char **argv, const struct wl_opts *o)
{
	if (o->rest >= argc)
		return wl_usage();
	const char *sock = wl_socket_path(o->sock);
	/* Check every option before reading anything. */
	for (size_t i = 0; i < o->nenv; i++) {
		const char *eq = strchr(o->env[i], '=');
		if (!eq || !wl_env_name_ok(o->env[i], (size_t)(eq - o->env[i])))
			return wl_fail(2, "--env needs VAR=NAME with VAR of [A-Za-z0-9_]: '%s'",
			               o->env[i]);
	}
	for (size_t i = 0; i < o->nenv; i++) {
		const char *eq = strchr(o->env[i], '=');
		size_t vn = (size_t)(eq - o->env[i]);
		struct wl_buf v = {0};
		int rc = wl_value(o->dir, sock, eq + 1, &v);
		if (rc)
			return rc;
		if (memchr(v.p, '\0', v.len) || vn + 1 + v.len >= WL_ENV_STRING_MAX) {
			wl_buf_free(&v);
			return wl_fail(
			    1,
			    "secret %s cannot be an environment variable: it holds a NUL "
			    "byte or is too long",
			    eq + 1);
		}
		/* setenv copies into the environment: CMD gets it, as it asked. */
		if (wl_buf_grow(&v, v.len + 1) < 0) {
			wl_buf_free(&v);
			return wl_fail(1, "out of memory");
		}
		v.p[v.len] = '\0';
		char var[256];
		if (vn >= sizeof(var)) {
			wl_buf_free(&v);
			return wl_fail(2, "--env: variable name too long");
		}
		memcpy(var, o->env[i], vn);
		var[vn] = '\0';
		rc = setenv(var, (const char *)v.p, 1);
		wl_buf_free(&v);
		if (rc < 0)
			return wl_fail(1, "cannot set %s: %s", var, strerror(errno));
	}
	fflush(NULL);
	execvp(argv[o->rest], argv + o->rest);
	int e = errno;
	return e == ENOENT ? wl_fail(127, "%s: command not found", argv[o->rest])
	                   : wl_fail(126, "%s: %s", argv[o->rest], strerror(e));
}

static int wl_read_version(int fd, char *buf, size_t len)
{
	ssize_t n;
	while ((n = pread(fd, buf, len - 1, 0)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* Equal but for trailing white space ("7\n" is "7"). */
static bool wl_same_version(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	while (na && (a[na - 1] == '\n' || a[na - 1] == ' '))
		na--;
	while (nb && (b[nb - 1] == '\n' || b[nb - 1] == ' '))
		nb--;
	return na == nb && memcmp(a, b, na) == 0;
}

static int64_t wl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wl_wait(int argc, char **argv, const struct wl_opts *o)
{
	if (o->rest != argc)
		return wl_usage();
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/.version", o->dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return wl_fail(2, "--dir too long");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return wl_fail(1, "%s: %s (is the secrets mount there?)", path, strerror(errno));
	char first[64], now[64];
	int rc = 0;
	if (o->since)
		snprintf(first, sizeof(first), "%s", o->since);
	else
		rc = wl_read_version(fd, first, sizeof(first));
	int64_t deadline = o->timeout >= 0 ? wl_now_ms() + (int64_t)(o->timeout * 1000) : -1;
	while (rc == 0) {
		int64_t left = deadline < 0 ? -1 : deadline - wl_now_ms();
		if (deadline >= 0 && left <= 0) {
			close(fd);
			return 124;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN | POLLPRI};
		int pr = poll(&p, 1, left < 0 || left > INT_MAX ? -1 : (int)left);
		if (pr < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		/* Re-read whatever woke us (or a spurious wake-up): only a new content counts. */
		rc = wl_read_version(fd, now, sizeof(now));
		if (rc == 0 && !wl_same_version(now, first)) {
			close(fd);
			fputs(now, stdout);
			if (!*now || now[strlen(now) - 1] != '\n')
				fputc('\n', stdout);
			return fflush(stdout) == 0 ? 0 : 1;
		}
	}
	close(fd);
	return wl_fail(1, "%s: %s", path, strerror(-rc));
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return wl_usage();
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("secretd-wl %s\n", SECRETD_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		wl_usage();
		return 0;
	}
	struct wl_opts o;
	if (wl_parse(argc, argv, &o))
		return 2;
	if (!strcmp(cmd, "read"))
		return wl_read(argc, argv, &o);
	if (!strcmp(cmd, "ls"))
		return wl_ls(argc, argv, &o);
	if (!strcmp(cmd, "exec"))
		return wl_exec(argc, argv, &o);
	if (!strcmp(cmd, "wait"))
		return wl_wait(argc, argv, &o);
	wl_fail(2, "unknown command '%s'", cmd);
	return wl_usage();
}
