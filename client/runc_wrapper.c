/* secretd-runc: runc with secretd's OCI hooks. For `create` and `run` it adds the createRuntime
 * and poststop hooks (secretd-oci-hook) to BUNDLE/config.json, copies a Docker container's
 * io.secretd.* labels into the annotations, rewrites the file atomically and execs the real
 * runc; every other command goes to runc untouched. Docker (daemon.json "runtimes") and
 * containerd (the runc shim's BinaryName, ctr --runc-binary) call it as they would call runc.
 * It never talks to the broker: the hook does, at createRuntime. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "client/runc_edit.h"
#include "common/cleanup.h"
#include "common/fileio.h"
#include "common/limits.h"

#ifndef SECRETD_HOOK_PATH
#define SECRETD_HOOK_PATH "/usr/libexec/secretd/secretd-oci-hook"
#endif

static const struct runc_args *wrap_args; /* for wrap_fail's copy into runc's log */

/* Appends one line to runc's --log file (as runc would: JSON when --log-format json), so that
 * containerd and dockerd show the reason, not just "exit status 1". */
static void wrap_log(const char *msg)
{
	if (!wrap_args || !wrap_args->log)
		return;
	_cleanup_close_ int fd =
	    open(wrap_args->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return; /* stderr already has it */
	char line[2048];
	int n;
	if (wrap_args->log_json) {
		char ts[64] = "";
		struct timespec now;
		struct tm tm;
		if (clock_gettime(CLOCK_REALTIME, &now) == 0 && gmtime_r(&now.tv_sec, &tm))
			strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_t *j = json_pack("{s:s, s:s, s:s}", "level", "error", "msg", msg, "time", ts);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!s)
			return;
		n = snprintf(line, sizeof(line), "%s\n", s);
		free(s);
	} else {
		n = snprintf(line, sizeof(line), "level=error msg=\"%s\"\n", msg);
	}
	if (n > 0 && (size_t)n < sizeof(line) && write(fd, line, (size_t)n) != n)
		return; /* stderr already has it */
}

static void wrap_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void wrap_fail(const char *fmt, ...)
{
	char msg[1024];
	int off = snprintf(msg, sizeof(msg), "secretd-runc: ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + off, sizeof(msg) - (size_t)off, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", msg);
	wrap_log(msg);
	exit(1);
}

static void wrap_usage(void)
{
	printf("usage: secretd-runc [--secretd-OPTION=VALUE...] [RUNC-OPTIONS] COMMAND [ARGS...]\n"
	       "\n"
	       "runc with secretd's OCI hooks: for `create` and `run` it adds secretd-oci-hook's\n"
	       "createRuntime and poststop hooks to BUNDLE/config.json (and a Docker container's\n"
	       "io.secretd.* labels to its annotations), then execs runc with the same arguments.\n"
	       "\n"
	       "  --secretd-runc=PATH         the real runc (default: $SECRETD_RUNC, else runc in "
	       "$PATH)\n"
	       "  --secretd-hook=PATH         the hook (default: $SECRETD_OCI_HOOK, else\n"
	       "                              " SECRETD_HOOK_PATH ")\n"
	       "  --secretd-socket=PATH       the broker's admin socket (default: $SECRETD_SOCKET, "
	       "else\n"
	       "                              " SECRETD_RUNTIME_DIR_DEFAULT "/" SECRETD_ADMIN_SOCK
	       ")\n"
	       "  --secretd-docker-root=DIR   Docker's data root (default: found from the bundle)\n"
	       "\n"
	       "Docker: daemon.json {\"runtimes\": {\"secretd\": {\"path\": "
	       "\"/usr/bin/secretd-runc\"}}},\n"
	       "then docker run --runtime secretd --label io.secretd.name=NAME ...\n");
}

/* Reads fd whole, at most max bytes: -EFBIG past that. */
static int wrap_read_all(int fd, size_t max, char **out, size_t *len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((uintmax_t)st.st_size > max)
		return -EFBIG;
	size_t cap = (size_t)st.st_size + 1, n = 0;
	_cleanup_free_ char *buf = malloc(cap + 1);
	if (!buf)
		return -ENOMEM;
	int r = fileio_read_upto(fd, buf, cap, &n);
	if (r < 0)
		return r;
	if (n == cap)
		return -EFBIG; /* grew while read: refuse rather than guess */
	buf[n] = '\0';
	*out = TAKE_PTR(buf);
	*len = n;
	return 0;
}

static int wrap_read_at(int dirfd, const char *name, size_t max, char **out, size_t *len)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	return wrap_read_all(fd, max, out, len);
}

/* Replaces DIR/config.json with buf (len bytes): a temporary file in the same directory with
 * the old file's mode, written, fsync'ed and renamed over it. */
static int wrap_write_config(int dirfd, const char *buf, size_t len)
{
	struct stat st;
	if (fstatat(dirfd, "config.json", &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	char tmp[64];
	snprintf(tmp, sizeof(tmp), ".config.json.secretd-%ld", (long)getpid());
	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	                st.st_mode & 07777);
	if (fd < 0)
		return -errno;
	int r = 0;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, buf + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (r == 0 && fchmod(fd, st.st_mode & 07777) < 0)
		r = -errno; /* the umask narrowed it */
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, "config.json") < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, tmp, 0); /* best effort: the error that matters is r */
	return r;
}

/* Docker's config.v2.json for this container, or *out NULL when it is not Docker's. */
static int wrap_docker_config(const struct runc_args *a, const char *cfg, size_t cfg_len,
                              char **out, size_t *len, char *dir, size_t dirlen)
{
	*out = NULL;
	*len = 0;
	int r;
	if (a->docker_root) {
		if (snprintf(dir, dirlen, "%s/containers/%s", a->docker_root, a->id) >= (int)dirlen)
			return -ENAMETOOLONG;
	} else {
		r = runc_docker_dir(cfg, cfg_len, a->id, dir, dirlen);
		if (r == -ENOENT)
			return 0;
		if (r < 0)
			return r;
	}
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = wrap_read_at(dfd, "config.v2.json", RUNC_DOCKER_CONFIG_MAX, out, len);
	return r == -ENOENT ? 0 : r;
}

/* The config of the container's image (DATA_ROOT/image/DRIVER/imagedb/content/sha256/HEX, DATA_ROOT
 * being dir without "/containers/ID"), or *out NULL when it cannot be read: runc_edit_config then
 * refuses io.secretd.* labels it cannot trace. */
static void wrap_docker_image(const struct runc_args *a, const char *dir, const char *docker,
                              size_t docker_len, char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	char root[PATH_MAX], rel[256];
	size_t tail = strlen("/containers/") + strlen(a->id);
	size_t dl = strlen(dir);
	if (dl <= tail || dl - tail >= sizeof(root) ||
	    runc_docker_image(docker, docker_len, rel, sizeof(rel)) < 0)
		return;
	memcpy(root, dir, dl - tail);
	root[dl - tail] = '\0';
	_cleanup_close_ int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd < 0 || wrap_read_at(rfd, rel, RUNC_DOCKER_CONFIG_MAX, out, len) < 0) {
		*out = NULL;
		*len = 0;
	}
}

static void wrap_edit_bundle(const struct runc_args *a)
{
	const char *bundle = a->bundle ? a->bundle : ".";
	if (!a->id)
		wrap_fail("%s without a container id", a->command);
	const char *hook = a->hook ? a->hook : getenv("SECRETD_OCI_HOOK");
	if (!hook || !*hook)
		hook = SECRETD_HOOK_PATH;
	/* As client_socket() does, without linking libcurl into every container start. */
	const char *sock = a->socket ? a->socket : getenv("SECRETD_SOCKET");
	if (!sock || !*sock)
		sock = SECRETD_RUNTIME_DIR_DEFAULT "/" SECRETD_ADMIN_SOCK;
	if (hook[0] != '/' || sock[0] != '/')
		wrap_fail("the hook (%s) and the socket (%s) must be absolute paths", hook, sock);
	if (access(hook, X_OK) < 0)
		wrap_fail("cannot run the hook %s: %s", hook, strerror(errno));

	_cleanup_close_ int dirfd = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		wrap_fail("cannot open the bundle %s: %s", bundle, strerror(errno));
	_cleanup_free_ char *cfg = NULL, *docker = NULL, *image = NULL, *edited = NULL;
	size_t cfg_len = 0, docker_len = 0, image_len = 0, edited_len = 0;
	int r = wrap_read_at(dirfd, "config.json", RUNC_CONFIG_MAX, &cfg, &cfg_len);
	if (r < 0)
		wrap_fail("cannot read %s/config.json: %s", bundle,
		          r == -EFBIG ? "larger than 16 MiB" : strerror(-r));
	char ddir[PATH_MAX];
	r = wrap_docker_config(a, cfg, cfg_len, &docker, &docker_len, ddir, sizeof(ddir));
	if (r < 0)
		wrap_fail("container %s: cannot read Docker's config.v2.json: %s", a->id,
		          r == -EFBIG ? "larger than 4 MiB" : strerror(-r));
	if (docker)
		wrap_docker_image(a, ddir, docker, docker_len, &image, &image_len);
	const struct runc_docker d = {
	    .config = docker, .config_len = docker_len, .image = image, .image_len = image_len};
	const struct runc_edit_opts o = {.hook = hook, .socket = sock, .id = a->id};
	const char *why = NULL;
	r = runc_edit_config(cfg, cfg_len, docker ? &d : NULL, &o, &edited, &edited_len, &why);
	if (r < 0)
		wrap_fail("container %s: %s", a->id, why ? why : strerror(-r));
	r = wrap_write_config(dirfd, edited, edited_len);
	if (r < 0)
		wrap_fail("cannot rewrite %s/config.json: %s", bundle, strerror(-r));
}

int main(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--secretd-help") == 0)) {
		wrap_usage();
		return 0;
	}
	if (argc < 1 || argc > RUNC_ARGC_MAX)
		wrap_fail("too many arguments (at most %d)", RUNC_ARGC_MAX);
	_cleanup_free_ const char **rargv = calloc((size_t)argc + 1, sizeof(*rargv));
	if (!rargv)
		wrap_fail("out of memory");
	static struct runc_args a;
	const char *why = NULL;
	int r = runc_args_parse(argc, argv, &a, rargv, &why);
	if (r < 0)
		wrap_fail("%s", why);
	wrap_args = &a;

	const char *runc = a.runc ? a.runc : getenv("SECRETD_RUNC");
	if (!runc || !*runc)
		runc = "runc";
	rargv[0] = runc;
	if (runc_args_creates(&a))
		wrap_edit_bundle(&a);
	execvp(runc, (char *const *)rargv);
	wrap_fail("cannot run %s: %s", runc, strerror(errno));
}
