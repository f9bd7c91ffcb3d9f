/* secretctl: what every command shares: the request and its failure message, the "not applied
 * everywhere" warning, JSON and time output, and the parsing of names, numbers and durations. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/ctl.h"
#include "common/labels.h"
#include "common/names.h"
#include "common/secret.h"
#include "common/timespec.h"

/* Reads all of fd (at most max bytes) into locked secret memory (secret_bytes_alloc). */
static int ctl_read_fd(int fd, size_t max, uint8_t **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	uint8_t *b = secret_bytes_alloc(cap);
	if (!b)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			if (cap > max)
				break;
			size_t nc = cap * 2;
			uint8_t *nb = secret_bytes_alloc(nc);
			if (!nb) {
				secret_bytes_free(b);
				return -ENOMEM;
			}
			memcpy(nb, b, n);
			secret_bytes_free(b);
			b = nb;
			cap = nc;
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			secret_bytes_free(b);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			secret_bytes_free(b);
			return -EFBIG;
		}
	}
	*out = b;
	*len = n;
	return 0;
}

int ctl_read_input(const char *file, const char *what, size_t max, uint8_t **out, size_t *len)
{
	int fd = 0;
	if (file) {
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return ctl_fail("cannot open %s: %s", file, strerror(errno));
	} else if (isatty(0)) {
		fprintf(stderr, "secretctl: reading the %s from the terminal; end with Ctrl-D\n",
		        what);
	}
	int r = ctl_read_fd(fd, max, out, len);
	if (file)
		close(fd);
	if (r < 0)
		return ctl_fail("cannot read the %s: %s", what, strerror(-r));
	return 0;
}

int ctl_labels_args(const char *const *args, size_t n, bool remove_ok, json_t **set,
                    json_t **remove)
{
	json_t *s = json_object(), *r = remove_ok ? json_array() : NULL;
	*set = NULL;
	if (remove)
		*remove = NULL;
	if (!s || (remove_ok && !r)) {
		json_decref(s);
		json_decref(r);
		return ctl_fail("out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const char *value = NULL, *why = NULL;
		size_t klen = 0, vlen = 0;
		bool rm = false;
		char key[LABELS_KEY_MAX + 1];
		int bad = labels_arg_parse(args[i], strlen(args[i]), remove_ok, &klen, &value,
		                           &vlen, &rm, &why);
		if (!bad) {
			memcpy(key, args[i], klen);
			key[klen] = '\0';
			bool twice = json_object_get(s, key) != NULL;
			for (size_t k = 0; !twice && r && k < json_array_size(r); k++)
				twice = strcmp(json_string_value(json_array_get(r, k)), key) == 0;
			if (twice) {
				why = "a label is named twice";
				bad = -EINVAL;
			} else if (rm) {
				json_array_append_new(r, json_string(key));
			} else {
				json_object_set_new(s, key, json_stringn(value, vlen));
			}
		}
		if (bad) {
			json_decref(s);
			json_decref(r);
			return ctl_fail("label '%s': %s", args[i], why);
		}
	}
	*set = s;
	if (remove)
		*remove = r;
	else
		json_decref(r);
	return 0;
}

/* Sends a request and checks the answer; prints the reason and returns 1 on any failure. */
int ctl_call(struct ctl *c, bool workload, const char *method, const char *path, const void *body,
             size_t len, const char *ctype, json_t *jbody, struct client_resp *resp, json_t **jout)
{
	const char *sock = client_socket(c->socket, workload);
	const char *err = NULL;
	int r = jbody ? client_request_json(sock, method, path, jbody, resp, jout, &err)
	              : client_request(sock, method, path, body, len, ctype, resp, &err);
	if (r < 0)
		return ctl_fail("cannot reach secretd at %s: %s", sock, err ? err : strerror(-r));
	if (resp->status < 200 || resp->status >= 300) {
		char buf[512];
		ctl_fail("%s", client_error(resp, buf, sizeof(buf)));
		client_resp_free(resp);
		if (jout && *jout) {
			json_decref(*jout);
			*jout = NULL;
		}
		return 1;
	}
	if (jout && !*jout && resp->len) {
		*jout = json_loadb((const char *)resp->body, resp->len, 0, NULL);
	}
	return 0;
}

/* After a change: when the answer (j, or the JSON body of resp when j is NULL) says it did not
 * reach every container, warns on stderr and remembers it for the exit status. */
void ctl_check_applied(struct ctl *c, const struct client_resp *resp, json_t *j)
{
	json_t *own = NULL;
	if (!j && resp->len && resp->body[0] == '{')
		j = own = json_loadb((const char *)resp->body, resp->len, 0, NULL);
	const char *w = json_string_value(json_object_get(j, "warning"));
	if (w)
		fprintf(stderr, "secretctl: warning: %s\n", w);
	/* exit CTL_EXIT_UNAPPLIED only when the change did not reach every container; other
	 * warnings (a grant that names no secret yet) leave the exit status 0 */
	if (json_object_get(j, "unapplied"))
		c->unapplied = true;
	json_decref(own);
}

void ctl_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (s)
		printf("%s\n", s);
	free(s);
}

const char *ctl_time(json_int_t t, char *buf, size_t len)
{
	return timespec_format((int64_t)t, buf, len);
}

const char *ctl_duration(json_int_t secs, char *buf, size_t len)
{
	return timespec_format_duration((int64_t)secs, buf, len);
}

int ctl_query_escape(const char *s, char *buf, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool plain = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		             (ch >= '0' && ch <= '9') || strchr("-._~:@", ch);
		if (n + (plain ? 1 : 3) >= len)
			return -ENAMETOOLONG;
		if (plain) {
			buf[n++] = (char)ch;
		} else {
			buf[n++] = '%';
			buf[n++] = hex[ch >> 4];
			buf[n++] = hex[ch & 15];
		}
	}
	if (n >= len)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return 0;
}

int ctl_need_name(struct ctl *c, int nargs, const char *usage)
{
	if (c->argc != nargs)
		return ctl_fail("usage: secretctl %s", usage);
	const char *why = NULL;
	if (names_check(c->argv[0], strlen(c->argv[0]), &why) < 0)
		return ctl_fail("invalid secret name '%s': %s", c->argv[0], why);
	return 0;
}

int ctl_parse_uint(const char *s, int base, long long max, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, base);
	if (!*s || *end || errno || v < 0 || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* A duration in common/timespec's syntax (N, 90s, 1h30m, 7d), more than 0 and at most 100
 * years of 365 days (the daemon's limit). */
int ctl_parse_duration(const char *s, long long *out)
{
	int64_t v;
	int rc = timespec_parse_duration(s, strlen(s), &v);
	if (rc < 0)
		return rc;
	if (v <= 0 || v > CTL_DURATION_MAX)
		return -ERANGE;
	*out = v;
	return 0;
}

int ctl_parse_expires(const char *s)
{
	struct timespec_when w;
	if (timespec_parse_when(s, strlen(s), 1, &w) < 0)
		return -EINVAL;
	if (w.relative && (w.value <= 0 || w.value > CTL_DURATION_MAX))
		return -ERANGE;
	return 0;
}

int ctl_parse_since(const char *s)
{
	struct timespec_when w;
	return timespec_parse_when(s, strlen(s), -1, &w) < 0 ? -EINVAL : 0;
}
