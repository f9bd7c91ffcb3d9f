/* envfile: .env and Dockerfile ENV/ARG parsers (see envfile.h for the accepted syntax). */
#include "client/envfile.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "common/secret.h"

struct env_st {
	const char *buf;
	size_t len;
	size_t pos;    /* start of the current line */
	unsigned line; /* its 1-based number */
	char *val;     /* scratch: ENVFILE_VALUE_MAX + 1 bytes, secret_bytes_alloc */
	size_t nvars;
	const struct envfile_cb *cb;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool name_first(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool name_char(char c)
{
	return name_first(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

bool envfile_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > ENVFILE_NAME_MAX || !name_first(name[0]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!name_char(name[i]))
			return false;
	return true;
}

/* End of the physical line at p: index of its '\n' or len. */
static size_t line_end(const char *buf, size_t len, size_t p)
{
	const char *nl = memchr(buf + p, '\n', len - p);
	return nl ? (size_t)(nl - buf) : len;
}

static unsigned count_nl(const char *buf, size_t from, size_t to)
{
	unsigned n = 0;
	for (size_t i = from; i < to; i++)
		n += buf[i] == '\n';
	return n;
}

static int emit(struct env_st *s, const char *name, size_t nlen, size_t vlen, unsigned line)
{
	if (s->nvars >= ENVFILE_VARS_MAX)
		return -E2BIG;
	s->nvars++;
	s->val[vlen] = '\0';
	int r = s->cb->var(s->cb->ctx, name, nlen, s->val, vlen, line);
	sodium_memzero(s->val, vlen);
	return r < 0 ? r : 0;
}

static void bad(struct env_st *s, unsigned line, const char *why)
{
	if (s->cb->bad)
		s->cb->bad(s->cb->ctx, line, why);
}

/* Moves to the line after the one holding p. */
static void next_line_after(struct env_st *s, size_t p)
{
	size_t e = line_end(s->buf, s->len, p);
	s->line += count_nl(s->buf, s->pos, e < s->len ? e + 1 : e);
	s->pos = e < s->len ? e + 1 : s->len;
}

/* After a closing quote at q (index past it): only blanks, an optional comment, then EOL.
 * Returns the end-of-line index or (size_t)-1. */
static size_t after_quote(const char *buf, size_t len, size_t q)
{
	while (q < len && is_blank(buf[q]))
		q++;
	size_t e = line_end(buf, len, q);
	if (q == e || buf[q] == '#' || (buf[q] == '\r' && q + 1 == e))
		return memchr(buf + q, '\0', e - q) ? (size_t)-1 : e;
	return (size_t)-1;
}

/* One logical entry starting at s->pos; advances s->pos/s->line past it. */
static int env_entry(struct env_st *s)
{
	const char *b = s->buf;
	size_t len = s->len, p = s->pos;
	unsigned line = s->line;
	size_t e = line_end(b, len, p);
	if (memchr(b + p, '\0', e - p)) {
		bad(s, line, "NUL byte in the line");
		next_line_after(s, p);
		return 0;
	}
	while (p < e && is_blank(b[p]))
		p++;
	if (p == e || b[p] == '#' || (b[p] == '\r' && p + 1 == e)) {
		next_line_after(s, p);
		return 0;
	}
	if (e - p > 7 && memcmp(b + p, "export", 6) == 0 && is_blank(b[p + 6])) {
		p += 6;
		while (p < e && is_blank(b[p]))
			p++;
	}
	size_t ns = p;
	while (p < e && name_char(b[p]))
		p++;
	size_t nlen = p - ns;
	if (nlen == 0 || !name_first(b[ns]) ||
	    (p < e && b[p] != '=' && !is_blank(b[p]) && b[p] != '\r')) {
		bad(s, line, "invalid variable name");
		next_line_after(s, ns);
		return 0;
	}
	while (p < e && is_blank(b[p]))
		p++;
	if (p == e || b[p] != '=') {
		bad(s, line, "no '=' after the variable name");
		next_line_after(s, ns);
		return 0;
	}
	if (nlen > ENVFILE_NAME_MAX) {
		bad(s, line, "variable name too long");
		next_line_after(s, ns);
		return 0;
	}
	p++; /* '=' */
	bool blanks = false;
	while (p < e && is_blank(b[p])) {
		p++;
		blanks = true;
	}
	size_t vlen = 0;
	bool toolong = false;
	if (p < e && b[p] == '\'') {
		const char *q = memchr(b + p + 1, '\'', len - p - 1);
		if (!q) {
			bad(s, line, "unterminated quote");
			next_line_after(s, ns);
			return 0;
		}
		size_t qs = p + 1, qe = (size_t)(q - b);
		size_t end = after_quote(b, len, qe + 1);
		if (end == (size_t)-1 || memchr(b + qs, '\0', qe - qs)) {
			bad(s, line, "text after the closing quote or NUL byte");
			next_line_after(s, ns);
			return 0;
		}
		vlen = qe - qs;
		if (vlen > ENVFILE_VALUE_MAX) {
			toolong = true;
		} else {
			memcpy(s->val, b + qs, vlen);
		}
		s->line += count_nl(b, s->pos, end < len ? end + 1 : end);
		s->pos = end < len ? end + 1 : len;
	} else if (p < e && b[p] == '"') {
		size_t i = p + 1;
		bool closed = false, nul = false;
		for (; i < len; i++) {
			char c = b[i];
			if (c == '"') {
				closed = true;
				break;
			}
			if (c == '\0')
				nul = true;
			if (c == '\\' && i + 1 < len) {
				char n = b[++i];
				switch (n) {
				case 'n':
					c = '\n';
					break;
				case 'r':
					c = '\r';
					break;
				case 't':
					c = '\t';
					break;
				case '\\':
				case '"':
				case '$':
					c = n;
					break;
				default:
					if (vlen < ENVFILE_VALUE_MAX)
						s->val[vlen] = '\\';
					vlen++;
					c = n;
				}
				if (n == '\0')
					nul = true;
			}
			if (vlen < ENVFILE_VALUE_MAX)
				s->val[vlen] = c;
			vlen++;
		}
		if (!closed) {
			sodium_memzero(s->val, vlen < ENVFILE_VALUE_MAX ? vlen : ENVFILE_VALUE_MAX);
			bad(s, line, "unterminated quote");
			next_line_after(s, ns);
			return 0;
		}
		size_t end = after_quote(b, len, i + 1);
		if (end == (size_t)-1 || nul) {
			sodium_memzero(s->val, vlen < ENVFILE_VALUE_MAX ? vlen : ENVFILE_VALUE_MAX);
			bad(s, line, "text after the closing quote or NUL byte");
			next_line_after(s, ns);
			return 0;
		}
		toolong = vlen > ENVFILE_VALUE_MAX;
		s->line += count_nl(b, s->pos, end < len ? end + 1 : end);
		s->pos = end < len ? end + 1 : len;
	} else {
		size_t vs = p, ve = e;
		for (size_t i = vs; i < e; i++) {
			if (b[i] == '#' && (i == vs ? blanks : is_blank(b[i - 1]))) {
				ve = i;
				break;
			}
		}
		while (ve > vs && (is_blank(b[ve - 1]) || b[ve - 1] == '\r'))
			ve--;
		vlen = ve - vs;
		if (vlen > ENVFILE_VALUE_MAX)
			toolong = true;
		else
			memcpy(s->val, b + vs, vlen);
		next_line_after(s, ns);
	}
	if (toolong) {
		sodium_memzero(s->val, ENVFILE_VALUE_MAX);
		bad(s, line, "value too long");
		return 0;
	}
	return emit(s, b + ns, nlen, vlen, line);
}

static int st_init(struct env_st *s, const char *buf, size_t len, const struct envfile_cb *cb)
{
	*s = (struct env_st){.buf = buf, .len = len, .line = 1, .cb = cb};
	if (len > ENVFILE_INPUT_MAX)
		return -EFBIG;
	if (sodium_init() < 0)
		return -ENOMEM;
	s->val = secret_bytes_alloc(ENVFILE_VALUE_MAX + 1);
	return s->val ? 0 : -ENOMEM;
}

static void st_done(struct env_st *s)
{
	secret_bytes_free(s->val); /* wipes */
	s->val = NULL;
}

int envfile_parse(const char *buf, size_t len, const struct envfile_cb *cb)
{
	struct env_st s;
	int r = st_init(&s, buf, len, cb);
	if (r < 0)
		return r;
	while (s.pos < s.len && r == 0)
		r = env_entry(&s);
	st_done(&s);
	return r;
}

/* ---- Dockerfile ---- */

struct seg {
	size_t off;    /* offset in the joined instruction */
	unsigned line; /* physical line that starts there */
};

struct dock_st {
	struct env_st e;
	char *ins; /* joined instruction, ENVFILE_LOGICAL_MAX + 1 bytes, secret_bytes_alloc */
	size_t ilen;
	struct seg *segs;
	size_t nsegs, capsegs;
};

static unsigned seg_line(const struct dock_st *d, size_t off)
{
	unsigned l = d->segs[0].line;
	for (size_t i = 0; i < d->nsegs && d->segs[i].off <= off; i++)
		l = d->segs[i].line;
	return l;
}

/* Reads one word of a key=value value at *p in the joined instruction into the scratch.
 * 0, or -EINVAL with *why. */
static int dock_word(struct dock_st *d, size_t *p, size_t *vlen, const char **why)
{
	const char *b = d->ins;
	size_t i = *p, n = 0;
	while (i < d->ilen && !is_blank(b[i])) {
		char c = b[i];
		if (c == '"' || c == '\'') {
			char q = c;
			i++;
			for (;;) {
				if (i >= d->ilen) {
					*why = "unterminated quote";
					return -EINVAL;
				}
				c = b[i];
				if (c == q)
					break;
				if (q == '"' && c == '\\' && i + 1 < d->ilen &&
				    (b[i + 1] == '"' || b[i + 1] == '\\' || b[i + 1] == '$'))
					c = b[++i];
				if (n < ENVFILE_VALUE_MAX)
					d->e.val[n] = c;
				n++;
				i++;
			}
			i++;
			continue;
		}
		if (c == '\\' && i + 1 < d->ilen)
			c = b[++i];
		if (n < ENVFILE_VALUE_MAX)
			d->e.val[n] = c;
		n++;
		i++;
	}
	*p = i;
	*vlen = n;
	if (n > ENVFILE_VALUE_MAX) {
		*why = "value too long";
		return -EINVAL;
	}
	return 0;
}

static int dock_instruction(struct dock_st *d)
{
	const char *b = d->ins;
	size_t len = d->ilen, p = 0;
	unsigned l0 = d->segs[0].line;
	while (p < len && is_blank(b[p]))
		p++;
	size_t ks = p;
	while (p < len && !is_blank(b[p]))
		p++;
	bool env = p - ks == 3 && strncasecmp(b + ks, "ENV", 3) == 0;
	bool arg = p - ks == 3 && strncasecmp(b + ks, "ARG", 3) == 0;
	if (!env && !arg)
		return 0;
	while (p < len && is_blank(b[p]))
		p++;
	if (p == len) {
		bad(&d->e, l0, env ? "ENV without a variable" : "ARG without a variable");
		return 0;
	}
	/* legacy ENV NAME value: the first word has no '=' */
	size_t ns = p;
	while (p < len && !is_blank(b[p]) && b[p] != '=')
		p++;
	if (env && (p == len || b[p] != '=')) {
		size_t nlen = p - ns;
		if (!envfile_name_ok(b + ns, nlen)) {
			bad(&d->e, seg_line(d, ns), "invalid variable name");
			return 0;
		}
		while (p < len && is_blank(b[p]))
			p++;
		size_t ve = len;
		while (ve > p && is_blank(b[ve - 1]))
			ve--;
		if (ve == p) {
			bad(&d->e, seg_line(d, ns), "ENV NAME without a value");
			return 0;
		}
		if (ve - p > ENVFILE_VALUE_MAX) {
			bad(&d->e, seg_line(d, ns), "value too long");
			return 0;
		}
		memcpy(d->e.val, b + p, ve - p);
		return emit(&d->e, b + ns, nlen, ve - p, seg_line(d, ns));
	}
	p = ns;
	while (p < len) {
		while (p < len && is_blank(b[p]))
			p++;
		if (p == len)
			break;
		ns = p;
		while (p < len && !is_blank(b[p]) && b[p] != '=')
			p++;
		size_t nlen = p - ns;
		unsigned line = seg_line(d, ns);
		if (p == len || b[p] != '=') {
			if (env) {
				bad(&d->e, line, "ENV NAME=VALUE pair without '='");
				return 0;
			}
			if (!envfile_name_ok(b + ns, nlen)) {
				bad(&d->e, line, "invalid variable name");
				return 0;
			}
			continue; /* ARG NAME: no default, no variable */
		}
		if (!envfile_name_ok(b + ns, nlen)) {
			bad(&d->e, line, "invalid variable name");
			return 0;
		}
		p++;
		size_t vlen = 0;
		const char *why = NULL;
		if (dock_word(d, &p, &vlen, &why) < 0) {
			sodium_memzero(d->e.val, ENVFILE_VALUE_MAX);
			bad(&d->e, line, why);
			return 0;
		}
		int r = emit(&d->e, b + ns, nlen, vlen, line);
		if (r < 0)
			return r;
	}
	return 0;
}

static int seg_add(struct dock_st *d, size_t off, unsigned line)
{
	if (d->nsegs && d->segs[d->nsegs - 1].off == off) {
		d->segs[d->nsegs - 1].line = line;
		return 0;
	}
	if (d->nsegs == d->capsegs) {
		size_t nc = d->capsegs ? d->capsegs * 2 : 16;
		struct seg *ns = realloc(d->segs, nc * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		d->segs = ns;
		d->capsegs = nc;
	}
	d->segs[d->nsegs++] = (struct seg){off, line};
	return 0;
}

/* True when the physical line [p, e) is blank or a comment. */
static bool blank_or_comment(const char *b, size_t p, size_t e)
{
	while (p < e && (is_blank(b[p]) || b[p] == '\r'))
		p++;
	return p == e || b[p] == '#';
}

int envfile_parse_dockerfile(const char *buf, size_t len, const struct envfile_cb *cb)
{
	struct dock_st d = {0};
	int r = st_init(&d.e, buf, len, cb);
	if (r < 0)
		return r;
	d.ins = secret_bytes_alloc(ENVFILE_LOGICAL_MAX + 1);
	if (!d.ins) {
		st_done(&d.e);
		return -ENOMEM;
	}
	size_t p = 0;
	unsigned line = 1;
	while (p < len && r == 0) {
		size_t e = line_end(buf, len, p);
		if (blank_or_comment(buf, p, e)) {
			p = e < len ? e + 1 : len;
			line++;
			continue;
		}
		/* an instruction: join continuation lines */
		d.ilen = 0;
		d.nsegs = 0;
		bool toolong = false, nul = false, first = true;
		unsigned l0 = line;
		for (;;) {
			if (!first && blank_or_comment(buf, p, e)) {
				/* dropped inside a continuation; a blank line ends nothing either
				 */
			} else {
				size_t ce = e;
				while (ce > p && (is_blank(buf[ce - 1]) || buf[ce - 1] == '\r'))
					ce--;
				bool cont = ce > p && buf[ce - 1] == '\\';
				if (cont)
					ce--;
				if (memchr(buf + p, '\0', ce - p))
					nul = true;
				if (!toolong && d.ilen + (ce - p) <= ENVFILE_LOGICAL_MAX) {
					if (seg_add(&d, d.ilen, line) < 0) {
						r = -ENOMEM;
						break;
					}
					memcpy(d.ins + d.ilen, buf + p, ce - p);
					d.ilen += ce - p;
				} else {
					toolong = true;
				}
				first = false;
				if (!cont) {
					p = e < len ? e + 1 : len;
					line++;
					break;
				}
			}
			p = e < len ? e + 1 : len;
			line++;
			if (p >= len)
				break;
			e = line_end(buf, len, p);
		}
		if (r < 0)
			break;
		if (toolong || nul)
			bad(&d.e, l0,
			    toolong ? "instruction too long" : "NUL byte in the instruction");
		else if (d.nsegs)
			r = dock_instruction(&d);
		sodium_memzero(d.ins, d.ilen);
	}
	free(d.segs);
	secret_bytes_free(d.ins);
	st_done(&d.e);
	return r;
}
