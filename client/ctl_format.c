#include "client/ctl_format.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int ctl_format_fail(char *err, const char *why)
{
	snprintf(err, CTL_FORMAT_ERR_MAX, "%s", why);
	return -EINVAL;
}

static bool ctl_format_space(char c)
{
	return c == ' ' || c == '\t';
}

/* The rest of {{index .Field "KEY"}} after the field's name: a[i..len) is ' "KEY"'; the key is
 * copied to key (at most CTL_FORMAT_KEY_MAX bytes, no quote or NUL). *klen its length. */
static int ctl_format_index_key(const char *a, size_t i, size_t len, char *key, size_t *klen,
                                char *err)
{
	while (i < len && ctl_format_space(a[i]))
		i++;
	if (len - i < 3 || a[i] != '"' || a[len - 1] != '"')
		return ctl_format_fail(err, "index takes a map field and a quoted key: "
		                            "{{index .Labels \"KEY\"}}");
	size_t n = len - i - 2;
	if (n > CTL_FORMAT_KEY_MAX || memchr(a + i + 1, '"', n) || memchr(a + i + 1, '\0', n))
		return ctl_format_fail(err, "index: the key is too long or holds a quote");
	memcpy(key, a + i + 1, n);
	*klen = n;
	return 0;
}

/* One action's inside, a[0..len): "[json ].Field", "json ." or "index .Field \"KEY\"" (spaces
 * around). An index key is appended to key/klen. */
static int ctl_format_action(const char *a, size_t len, const struct ctl_format_field *fields,
                             size_t nfields, struct ctl_format_part *p, char *key, size_t *klen,
                             char *err)
{
	size_t i = 0;
	while (i < len && ctl_format_space(a[i]))
		i++;
	while (len > i && ctl_format_space(a[len - 1]))
		len--;
	p->json = false;
	p->index = false;
	size_t end = len; /* the field name's end */
	if (len - i >= 6 && memcmp(a + i, "index", 5) == 0 && ctl_format_space(a[i + 5])) {
		p->index = true;
		i += 6;
		while (i < len && ctl_format_space(a[i]))
			i++;
		end = i;
		while (end < len && !ctl_format_space(a[end]) && a[end] != '"')
			end++;
		int rc = ctl_format_index_key(a, end, len, key, klen, err);
		if (rc < 0)
			return rc;
	} else if (len - i >= 5 && memcmp(a + i, "json", 4) == 0 && ctl_format_space(a[i + 4])) {
		p->json = true;
		i += 5;
		while (i < len && ctl_format_space(a[i]))
			i++;
	}
	if (i >= end || a[i] != '.')
		return ctl_format_fail(err, "an action must be {{.Field}}, {{json .Field}}, "
		                            "{{json .}} or {{index .Field \"KEY\"}}");
	i++;
	if (i == end) {
		if (!p->json)
			return ctl_format_fail(err, p->index ? "index takes a map field"
			                                     : "{{.}} is {{json .}} here");
		p->field = CTL_FORMAT_WHOLE;
		return 0;
	}
	size_t fl = end - i;
	if (fl >= CTL_FORMAT_FIELD_MAX)
		return ctl_format_fail(err, "unknown field in the template");
	for (size_t k = 0; k < nfields; k++) {
		if (strlen(fields[k].name) == fl && strncasecmp(fields[k].name, a + i, fl) == 0) {
			if (p->index && !fields[k].map)
				return ctl_format_fail(err, "index takes a map field (Labels)");
			p->field = k;
			return 0;
		}
	}
	return ctl_format_fail(err, "unknown field in the template");
}

int ctl_format_parse(const char *t, size_t len, const struct ctl_format_field *fields,
                     size_t nfields, struct ctl_format *out, char *err)
{
	memset(out, 0, sizeof(*out));
	out->fields = fields;
	if (len >= CTL_FORMAT_TEXT_MAX)
		return ctl_format_fail(err, "the template is too long");
	size_t o = 0; /* bytes in out->buf */
	size_t i = 0;
	while (i < len) {
		if (out->n == CTL_FORMAT_PARTS_MAX)
			return ctl_format_fail(err, "the template has too many parts");
		struct ctl_format_part *p = &out->parts[out->n];
		if (len - i >= 2 && t[i] == '{' && t[i + 1] == '{') {
			size_t k = i + 2;
			while (k + 1 < len && !(t[k] == '}' && t[k + 1] == '}'))
				k++;
			if (k + 1 >= len)
				return ctl_format_fail(err, "an action is not closed with }}");
			p->action = true;
			size_t klen = 0;
			int rc = ctl_format_action(t + i + 2, k - i - 2, fields, nfields, p,
			                           out->buf + o, &klen, err);
			if (rc < 0)
				return rc;
			p->off = o; /* the index key, if any: fewer bytes than its action's */
			p->len = klen;
			o += klen;
			out->n++;
			i = k + 2;
			continue;
		}
		/* a text run, up to the next "{{" */
		p->action = false;
		p->off = o;
		while (i < len && !(len - i >= 2 && t[i] == '{' && t[i + 1] == '{')) {
			char c = t[i++];
			if (c == '\0')
				return ctl_format_fail(err, "the template has a NUL byte");
			if (c == '\\' && i < len && (t[i] == 't' || t[i] == 'n' || t[i] == '\\')) {
				c = t[i] == 't' ? '\t' : t[i] == 'n' ? '\n' : '\\';
				i++;
			}
			out->buf[o++] = c; /* o < len < CTL_FORMAT_TEXT_MAX */
		}
		p->len = o - p->off;
		out->n++;
	}
	return 0;
}

/* Appends s[0..n) to buf; false once it does not fit (cap includes the NUL). */
static bool ctl_format_put(char *buf, size_t cap, size_t *o, const char *s, size_t n)
{
	if (n >= cap - *o) {
		size_t room = cap - *o - 1;
		memcpy(buf + *o, s, room);
		*o += room;
		return false;
	}
	memcpy(buf + *o, s, n);
	*o += n;
	return true;
}

/* Appends s as a JSON string. */
static bool ctl_format_put_json(char *buf, size_t cap, size_t *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	if (!ctl_format_put(buf, cap, o, "\"", 1))
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char e[7] = {'\\', 0};
		size_t n = 2;
		if (c == '"' || c == '\\')
			e[1] = (char)c;
		else if (c == '\n')
			e[1] = 'n';
		else if (c == '\t')
			e[1] = 't';
		else if (c < 0x20) {
			e[1] = 'u';
			e[2] = '0';
			e[3] = '0';
			e[4] = hex[c >> 4];
			e[5] = hex[c & 15];
			n = 6;
		} else {
			e[0] = (char)c;
			n = 1;
		}
		if (!ctl_format_put(buf, cap, o, e, n))
			return false;
	}
	return ctl_format_put(buf, cap, o, "\"", 1);
}

int ctl_format_render(const struct ctl_format *f, const char *const *values, const char *whole,
                      char *buf, size_t cap, size_t *outlen)
{
	return ctl_format_render_map(f, values, NULL, NULL, whole, buf, cap, outlen);
}

int ctl_format_render_map(const struct ctl_format *f, const char *const *values,
                          ctl_format_lookup_fn *lookup, void *ud, const char *whole, char *buf,
                          size_t cap, size_t *outlen)
{
	if (cap == 0)
		return -ENOBUFS;
	size_t o = 0;
	bool fit = true;
	for (size_t i = 0; i < f->n && fit; i++) {
		const struct ctl_format_part *p = &f->parts[i];
		if (!p->action) {
			fit = ctl_format_put(buf, cap, &o, f->buf + p->off, p->len);
			continue;
		}
		if (p->field == CTL_FORMAT_WHOLE) {
			const char *w = whole ? whole : "null";
			fit = ctl_format_put(buf, cap, &o, w, strlen(w));
			continue;
		}
		if (p->index) {
			char key[CTL_FORMAT_KEY_MAX + 1];
			memcpy(key, f->buf + p->off, p->len);
			key[p->len] = '\0';
			const char *v = lookup ? lookup(ud, p->field, key) : NULL;
			fit = ctl_format_put(buf, cap, &o, v ? v : "", v ? strlen(v) : 0);
			continue;
		}
		if (p->json && f->fields[p->field].map) {
			const char *v = lookup ? lookup(ud, p->field, NULL) : NULL;
			fit = ctl_format_put(buf, cap, &o, v ? v : "{}", v ? strlen(v) : 2);
			continue;
		}
		const char *v = values[p->field] ? values[p->field] : "";
		if (p->json && !f->fields[p->field].number)
			fit = ctl_format_put_json(buf, cap, &o, v);
		else if (p->json && !*v)
			fit = ctl_format_put(buf, cap, &o, "null", 4);
		else
			fit = ctl_format_put(buf, cap, &o, v, strlen(v));
	}
	buf[o] = '\0';
	*outlen = o;
	return fit ? 0 : -ENOBUFS;
}
