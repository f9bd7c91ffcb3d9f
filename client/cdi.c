/* cdi: `secretctl cdi generate` (see cdi.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/cdi.h"
#include "client/client.h"
#include "common/cleanup.h"

#ifndef SECRETD_HOOK_PATH
#define SECRETD_HOOK_PATH "/usr/libexec/secretd/secretd-oci-hook"
#endif

bool cdi_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > CDI_DEVICE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		             (ch >= '0' && ch <= '9');
		if (!alnum && (i == 0 || (ch != '_' && ch != '.' && ch != '-')))
			return false;
	}
	return !(len == strlen(CDI_DEVICE_ANY) && memcmp(name, CDI_DEVICE_ANY, len) == 0);
}

/* {"name": dev, "containerEdits": {"hooks": [createRuntime, poststop]}} */
static json_t *cdi_device(const char *dev, const char *hook, const char *socket, const char *name)
{
	json_t *args = name ? json_pack("[s,s,s,s,s,s]", "secretd-oci-hook", "--socket", socket,
	                                "--name", name, "createRuntime")
	                    : json_pack("[s,s,s,s,s]", "secretd-oci-hook", "--socket", socket,
	                                "--wants", "createRuntime");
	if (!args)
		return NULL;
	return json_pack("{s:s, s:{s:[{s:s, s:s, s:o, s:i}, {s:s, s:s, s:[s,s,s,s], s:i}]}}",
	                 "name", dev, "containerEdits", "hooks", "hookName", "createRuntime",
	                 "path", hook, "args", args, "timeout", CDI_HOOK_TIMEOUT, "hookName",
	                 "poststop", "path", hook, "args", "secretd-oci-hook", "--socket", socket,
	                 "poststop", "timeout", CDI_HOOK_TIMEOUT);
}

int cdi_spec_build(const char *hook, const char *socket, const char *const *names, size_t n,
                   json_t **out, const char **why)
{
	*out = NULL;
	if (!hook || hook[0] != '/' || !socket || socket[0] != '/') {
		*why = "the hook and the socket must be absolute paths";
		return -EINVAL;
	}
	if (n > CDI_DEVICES_MAX) {
		*why = "too many --name options";
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!cdi_name_ok(names[i], strlen(names[i]))) {
			*why = "a --name is not a CDI device name ([A-Za-z0-9][A-Za-z0-9_.-]*, at "
			       "most "
			       "128 bytes, not \"" CDI_DEVICE_ANY "\")";
			return -EINVAL;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(names[k], names[i]) == 0) {
				*why = "the same --name twice";
				return -EINVAL;
			}
	}
	json_t *devs = json_array();
	json_t *spec = devs ? json_pack("{s:s, s:s, s:o}", "cdiVersion", CDI_VERSION, "kind",
	                                CDI_KIND, "devices", devs)
	                    : NULL;
	if (!spec)
		return -ENOMEM;
	if (json_array_append_new(devs, cdi_device(CDI_DEVICE_ANY, hook, socket, NULL)) < 0)
		goto nomem;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(devs, cdi_device(names[i], hook, socket, names[i])) < 0)
			goto nomem;
	*out = spec;
	return 0;
nomem:
	json_decref(spec);
	return -ENOMEM;
}

/* Writes s to path through a temporary file in the same directory, renamed over it. */
static int cdi_write(const char *path, const char *s)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	size_t len = strlen(s), off = 0;
	int r = 0;
	while (off < len) {
		ssize_t w = write(fd, s + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (r == 0 && fchmod(fd, 0644) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp); /* best effort: r is the error that matters */
	return r;
}

int cdi_main(int argc, char **argv, const char *socket)
{
	if (argc < 2 || strcmp(argv[1], "generate") != 0)
		return client_fail(2, "usage: secretctl " CDI_USAGE);
	static const struct option opts[] = {
	    {"name", required_argument, NULL, 'n'},
	    {"hook", required_argument, NULL, 'k'},
	    {"output", required_argument, NULL, 'o'},
	    {0},
	};
	_cleanup_free_ const char **names = calloc((size_t)argc, sizeof(*names));
	if (!names)
		return client_fail(1, "out of memory");
	size_t n = 0;
	const char *hook = getenv("SECRETD_OCI_HOOK"), *output = NULL;
	if (!hook || !*hook)
		hook = SECRETD_HOOK_PATH;
	optind = 1;
	int c;
	while ((c = getopt_long(argc - 1, argv + 1, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			names[n++] = optarg;
			break;
		case 'k':
			hook = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		default:
			return client_fail(2, "usage: secretctl " CDI_USAGE);
		}
	}
	if (optind != argc - 1)
		return client_fail(2, "usage: secretctl " CDI_USAGE);
	const char *sock = client_socket(socket, false);
	json_t *spec = NULL;
	const char *why = NULL;
	int r = cdi_spec_build(hook, sock, names, n, &spec, &why);
	if (r < 0)
		return client_fail(r == -EINVAL ? 2 : 1, "cdi generate: %s",
		                   why ? why : strerror(-r));
	_cleanup_free_ char *s = json_dumps(spec, JSON_INDENT(2));
	json_decref(spec);
	if (!s)
		return client_fail(1, "out of memory");
	/* A spec whose hook cannot run would stop every container that asks for a device. */
	if (access(hook, X_OK) < 0)
		return client_fail(1, "cdi generate: the hook %s cannot be run: %s", hook,
		                   strerror(errno));
	if (!output || strcmp(output, "-") == 0) {
		if (printf("%s\n", s) < 0 || fflush(stdout) != 0)
			return client_fail(1, "cdi generate: cannot write to stdout");
		return 0;
	}
	r = cdi_write(output, s);
	if (r < 0)
		return client_fail(1, "cdi generate: cannot write %s: %s", output, strerror(-r));
	fprintf(stderr, "secretctl: wrote %s (devices " CDI_KIND "=" CDI_DEVICE_ANY "%s)\n", output,
	        n ? " and one per --name" : "");
	return 0;
}
