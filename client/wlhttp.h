/* wlhttp: the few formats the static workload client (secretd-wl) reads from the broker, parsed
 * with no library: an HTTP/1.x response, the {"secrets": [...]} list and the {"error": "..."} body.
 * Pure functions over (pointer, length); nothing is allocated. Return 0 or a negative errno. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define WLHTTP_HEAD_MAX (16 * 1024) /* bytes of status line + headers */
#define WLHTTP_HEADERS_MAX 64       /* header lines */
#define WLHTTP_LIST_MAX 100000      /* names in one list */

struct wlhttp_resp {
	int status;      /* 100..599 */
	size_t body_off; /* the body is buf[body_off, body_off + body_len) */
	size_t body_len;
	bool retry_after; /* a Retry-After header was sent (the broker's "refused for load") */
};

/* Parses the response in buf[0, len). eof: the peer has closed the connection (a body without
 * Content-Length ends there). 0 when complete; -EAGAIN when more bytes are needed; -EBADMSG for
 * a malformed response (bad status line, bad or repeated Content-Length, bytes past the body);
 * -EPROTONOSUPPORT for a chunked body (the client speaks HTTP/1.0); -E2BIG when the head exceeds
 * WLHTTP_HEAD_MAX bytes or WLHTTP_HEADERS_MAX lines. */
int wlhttp_parse(const char *buf, size_t len, bool eof, struct wlhttp_resp *out);

/* Calls cb for each name of a {"secrets": ["a", "b"]} body (white space allowed between tokens;
 * names are plain strings without escapes, as the broker's names are). 0, -EBADMSG for any other
 * shape, -E2BIG past WLHTTP_LIST_MAX names, or cb's negative return. */
int wlhttp_list(const char *body, size_t len, int (*cb)(void *ud, const char *name, size_t n),
                void *ud);

/* Copies the "error" string of a {"error": "..."} body into out (NUL-terminated, truncated to
 * outlen - 1, \" and \\ decoded, other escapes and control bytes shown as '?'). 0, or -EBADMSG
 * when the body holds no such string (out is then ""). */
int wlhttp_error(const char *body, size_t len, char *out, size_t outlen);
