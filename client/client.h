/* client: HTTP+JSON over the broker's unix sockets (HTTP/1.0, one connection per request, the
 * answer parsed by client/wlhttp; no libcurl), shared by secretctl and
 * secretd-oci-hook. Functions return 0 or a negative errno unless said otherwise. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct client_resp {
	long status;   /* HTTP status, 0 if no answer */
	uint8_t *body; /* response body, NUL-terminated, in locked secret memory (common/secret.h)
	                  (it may hold a secret); free with client_resp_free */
	size_t len;
};

/* The socket to use: `opt` if non-NULL, else (workload only) $SECRETD_WORKLOAD_SOCKET, else
 * $SECRETD_SOCKET, else the default admin or workload socket under /run/secretd. */
const char *client_socket(const char *opt, bool workload);
/* One request: method, path ("/v1/..."), optional body (len bytes, content_type may be NULL).
 * 0 when an HTTP answer arrived (any status: check out->status); -ECONNREFUSED / -ENOENT when
 * the socket is not there or nobody listens; -EIO other transport errors. *err (may be NULL)
 * gets a static reason for transport failures. A request the broker refuses for load (429, or
 * 503 with Retry-After: its connection limits) is retried up to 8 times with exponential backoff
 * and jitter (50 ms doubling to 2 s, about 6 s in all); the last answer is returned. */
int client_request(const char *socket, const char *method, const char *path, const void *body,
                   size_t len, const char *content_type, struct client_resp *out, const char **err);
/* Same with a JSON body (serialised compactly) and, on a 2xx answer with a JSON body, *json_out
 * set (caller json_decref's; may be NULL to ignore). */
int client_request_json(const char *socket, const char *method, const char *path, json_t *body,
                        struct client_resp *out, json_t **json_out, const char **err);
void client_resp_free(struct client_resp *r);
/* The broker's error message for a non-2xx answer ({"error": "..."}), or a generic one.
 * Writes into buf (len bytes) and returns buf. */
const char *client_error(const struct client_resp *r, char *buf, size_t len);
/* Escapes a secret name for use in a URL path: names are [A-Za-z0-9._-/], so this only checks
 * them (names_check) and returns 0 or -EINVAL. */
int client_check_name(const char *name, const char **why);

/* Prints "PROGRAM: MESSAGE" (the program's own name) and a newline on stderr; returns rc, so
 * that a command can `return client_fail(2, "...")`. */
int client_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
