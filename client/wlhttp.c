#include "client/wlhttp.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static bool wlhttp_ieq(const char *a, size_t n, const char *lit)
{
	size_t m = strlen(lit);
	if (n != m)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = a[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != lit[i])
			return false;
	}
	return true;
}

static void wlhttp_trim(const char **s, size_t *n)
{
	while (*n && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

/* Digits only, no sign, no overflow. */
static int wlhttp_size(const char *s, size_t n, size_t *out)
{
	if (!n)
		return -EBADMSG;
	size_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EBADMSG;
		size_t d = (size_t)(s[i] - '0');
		if (v > (SIZE_MAX - d) / 10)
			return -EBADMSG;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int wlhttp_parse(const char *buf, size_t len, bool eof, struct wlhttp_resp *out)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	size_t head = end ? (size_t)(end - buf) + 4 : len;
	if (head > WLHTTP_HEAD_MAX)
		return -E2BIG;
	if (!end)
		return eof ? -EBADMSG : -EAGAIN;
	/* "HTTP/1.x NNN reason" */
	const char *eol = memmem(buf, head, "\r\n", 2);
	size_t ln = (size_t)(eol - buf);
	if (ln < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
	    buf[8] != ' ' || (ln > 12 && buf[12] != ' '))
		return -EBADMSG;
	int status = 0;
	for (int i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -EBADMSG;
		status = status * 10 + (buf[i] - '0');
	}
	if (status < 100 || status > 599)
		return -EBADMSG;
	bool have_len = false, retry_after = false;
	size_t clen = 0;
	unsigned lines = 0;
	const char *p = eol + 2;
	const char *hend = buf + head - 2; /* the blank line's CRLF */
	while (p < hend) {
		const char *e = memmem(p, (size_t)(hend - p), "\r\n", 2);
		if (!e)
			return -EBADMSG;
		if (++lines > WLHTTP_HEADERS_MAX)
			return -E2BIG;
		const char *colon = memchr(p, ':', (size_t)(e - p));
		if (!colon || colon == p)
			return -EBADMSG;
		size_t kn = (size_t)(colon - p);
		const char *v = colon + 1;
		size_t vn = (size_t)(e - v);
		if (memchr(p, '\0', (size_t)(e - p)) || memchr(p, '\n', (size_t)(e - p)) ||
		    memchr(p, '\r', (size_t)(e - p)))
			return -EBADMSG;
		wlhttp_trim(&v, &vn);
		if (wlhttp_ieq(p, kn, "content-length")) {
			size_t n;
			if (have_len || wlhttp_size(v, vn, &n) < 0)
				return -EBADMSG;
			have_len = true;
			clen = n;
		} else if (wlhttp_ieq(p, kn, "transfer-encoding")) {
			return -EPROTONOSUPPORT;
		} else if (wlhttp_ieq(p, kn, "retry-after")) {
			retry_after = true;
		}
		p = e + 2;
	}
	size_t avail = len - head;
	if (have_len) {
		if (avail < clen)
			return eof ? -EBADMSG : -EAGAIN;
		if (avail > clen)
			return -EBADMSG;
	} else if (!eof) {
		return -EAGAIN;
	}
	out->status = status;
	out->body_off = head;
	out->body_len = have_len ? clen : avail;
	out->retry_after = retry_after;
	return 0;
}

static void wlhttp_ws(const char *s, size_t n, size_t *i)
{
	while (*i < n && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r'))
		(*i)++;
}

static bool wlhttp_lit(const char *s, size_t n, size_t *i, const char *lit)
{
	wlhttp_ws(s, n, i);
	size_t m = strlen(lit);
	if (n - *i < m || memcmp(s + *i, lit, m) != 0)
		return false;
	*i += m;
	return true;
}

/* A plain string (no escapes, no control bytes) at *i: its bytes. */
static int wlhttp_plain_string(const char *s, size_t n, size_t *i, const char **str, size_t *sn)
{
	wlhttp_ws(s, n, i);
	if (*i >= n || s[*i] != '"')
		return -EBADMSG;
	size_t a = ++*i;
	while (*i < n && s[*i] != '"') {
		unsigned char c = (unsigned char)s[*i];
		if (c == '\\' || c < 0x20)
			return -EBADMSG;
		(*i)++;
	}
	if (*i >= n)
		return -EBADMSG;
	*str = s + a;
	*sn = *i - a;
	(*i)++;
	return 0;
}

int wlhttp_list(const char *body, size_t len, int (*cb)(void *ud, const char *name, size_t n),
                void *ud)
{
	size_t i = 0, count = 0;
	if (!wlhttp_lit(body, len, &i, "{") || !wlhttp_lit(body, len, &i, "\"secrets\"") ||
	    !wlhttp_lit(body, len, &i, ":") || !wlhttp_lit(body, len, &i, "["))
		return -EBADMSG;
	if (!wlhttp_lit(body, len, &i, "]")) {
		for (;;) {
			const char *s;
			size_t sn;
			if (wlhttp_plain_string(body, len, &i, &s, &sn) < 0)
				return -EBADMSG;
			if (++count > WLHTTP_LIST_MAX)
				return -E2BIG;
			int r = cb(ud, s, sn);
			if (r < 0)
				return r;
			if (wlhttp_lit(body, len, &i, "]"))
				break;
			if (!wlhttp_lit(body, len, &i, ","))
				return -EBADMSG;
		}
	}
	if (!wlhttp_lit(body, len, &i, "}"))
		return -EBADMSG;
	wlhttp_ws(body, len, &i);
	return i == len ? 0 : -EBADMSG;
}

int wlhttp_error(const char *body, size_t len, char *out, size_t outlen)
{
	if (!outlen)
		return -EBADMSG;
	out[0] = '\0';
	size_t i = 0;
	if (!wlhttp_lit(body, len, &i, "{") || !wlhttp_lit(body, len, &i, "\"error\"") ||
	    !wlhttp_lit(body, len, &i, ":") || !wlhttp_lit(body, len, &i, "\""))
		return -EBADMSG;
	size_t o = 0;
	while (i < len && body[i] != '"') {
		char c = body[i++];
		if (c == '\\') {
			if (i >= len)
				break;
			char e = body[i++];
			c = (e == '"' || e == '\\') ? e : '?';
			if (e == 'u') /* \uXXXX: one '?' for the whole escape */
				i = len - i >= 4 ? i + 4 : len;
		} else if ((unsigned char)c < 0x20) {
			c = '?';
		}
		if (o + 1 < outlen)
			out[o++] = c;
	}
	out[o] = '\0';
	return i < len ? 0 : -EBADMSG;
}
