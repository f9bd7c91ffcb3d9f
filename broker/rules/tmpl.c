#include "broker/rules/tmpl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/limits.h"
#include "common/names.h"
#include "common/secret.h"

enum tmpl_kind { TMPL_TEXT, TMPL_SECRET, TMPL_VERSION, TMPL_LITERAL };
enum tmpl_filter { TMPL_F_URLQUERY, TMPL_F_JSON, TMPL_F_BASE64, TMPL_F_TRIM, TMPL_F_SHELLQUOTE };

static const char *const tmpl_filter_names[] = {"urlquery", "json", "base64", "trim", "shellquote"};
#define TMPL_NFILTER_KINDS (sizeof(tmpl_filter_names) / sizeof(tmpl_filter_names[0]))

struct tmpl_part {
	enum tmpl_kind kind;
	size_t off, len; /* TEXT: bytes of t->src; LITERAL: bytes of t->lits */
	size_t ref;      /* SECRET, VERSION: index into t->refs */
	size_t nfilters;
	uint8_t filters[TMPL_FILTERS_MAX];
};

struct tmpl {
	char *src;
	size_t srclen;
	char *lits; /* decoded string literals, back to back */
	size_t litlen;
	struct tmpl_part *parts;
	size_t nparts;
	char *refs[TMPL_REFS_MAX];
	size_t refat[TMPL_REFS_MAX]; /* byte offset of each reference's first use */
	size_t nrefs;
};

/* ---- parsing ---- */

struct tmpl_parser {
	const char *s;
	size_t len, pos;
	tmpl *t;
	struct tmpl_error *err;
};

static int tmpl_fail(struct tmpl_parser *p, size_t at, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int tmpl_fail(struct tmpl_parser *p, size_t at, int rc, const char *fmt, ...)
{
	if (!p->err)
		return rc;
	unsigned line = 1, col = 1;
	for (size_t i = 0; i < at && i < p->len; i++) {
		if (p->s[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	p->err->offset = at;
	p->err->line = line;
	p->err->col = col;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
	va_end(ap);
	return rc;
}

static bool tmpl_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void tmpl_skip_space(struct tmpl_parser *p)
{
	while (p->pos < p->len && tmpl_is_space(p->s[p->pos]))
		p->pos++;
}

static bool tmpl_at(const struct tmpl_parser *p, const char *tok)
{
	size_t n = strlen(tok);
	return p->len - p->pos >= n && memcmp(p->s + p->pos, tok, n) == 0;
}

/* A word of [a-z][a-z0-9]*: its start and length (0 when none). */
static size_t tmpl_word(struct tmpl_parser *p, const char **w)
{
	*w = p->s + p->pos;
	size_t n = 0;
	while (p->pos < p->len && ((p->s[p->pos] >= 'a' && p->s[p->pos] <= 'z') ||
	                           (n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))) {
		p->pos++;
		n++;
	}
	return n;
}

static bool tmpl_word_is(const char *w, size_t n, const char *name)
{
	return strlen(name) == n && memcmp(w, name, n) == 0;
}

/* A "..." literal at p->pos, decoded and appended to t->lits; *off, *n say where. */
static int tmpl_string(struct tmpl_parser *p, size_t *off, size_t *n)
{
	size_t start = p->pos;
	if (p->pos >= p->len || p->s[p->pos] != '"')
		return tmpl_fail(p, p->pos, -EINVAL, "expected a string in double quotes");
	p->pos++;
	tmpl *t = p->t;
	*off = t->litlen;
	size_t dec = 0;
	for (;;) {
		if (p->pos >= p->len || p->s[p->pos] == '\n')
			return tmpl_fail(p, start, -EINVAL, "unterminated string");
		char c = p->s[p->pos++];
		if (c == '"')
			break;
		if (c == '\\') {
			if (p->pos >= p->len)
				return tmpl_fail(p, start, -EINVAL, "unterminated string");
			char e = p->s[p->pos++];
			switch (e) {
			case '"':
			case '\\':
				c = e;
				break;
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			default:
				return tmpl_fail(
				    p, p->pos - 2, -EINVAL,
				    "unknown escape \\%c in a string (\\\" \\\\ \\n \\t \\r)",
				    (e >= 0x21 && e < 0x7f) ? e : '?');
			}
		}
		if (dec >= TMPL_LITERAL_MAX)
			return tmpl_fail(p, start, -E2BIG, "string longer than %d bytes",
			                 TMPL_LITERAL_MAX);
		t->lits[t->litlen++] = c; /* lits has room for the whole source */
		dec++;
	}
	*n = dec;
	return 0;
}

/* Index of name in t->refs, adding it when new. */
static int tmpl_add_ref(struct tmpl_parser *p, size_t at, const char *name, size_t n, size_t *idx)
{
	tmpl *t = p->t;
	for (size_t i = 0; i < t->nrefs; i++)
		if (strlen(t->refs[i]) == n && memcmp(t->refs[i], name, n) == 0) {
			*idx = i;
			return 0;
		}
	if (t->nrefs >= TMPL_REFS_MAX)
		return tmpl_fail(p, at, -E2BIG, "more than %d distinct secrets referenced",
		                 TMPL_REFS_MAX);
	char *s = strndup(name, n);
	if (!s)
		return -ENOMEM;
	*idx = t->nrefs;
	t->refat[t->nrefs] = at;
	t->refs[t->nrefs++] = s;
	return 0;
}

/* One action; p->pos is just past "{{". */
static int tmpl_action(struct tmpl_parser *p, size_t open_at, struct tmpl_part *part)
{
	tmpl_skip_space(p);
	size_t at = p->pos;
	int r;
	if (p->pos < p->len && p->s[p->pos] == '"') {
		part->kind = TMPL_LITERAL;
		r = tmpl_string(p, &part->off, &part->len);
		if (r < 0)
			return r;
	} else {
		const char *w;
		size_t wn = tmpl_word(p, &w);
		if (tmpl_word_is(w, wn, "secret"))
			part->kind = TMPL_SECRET;
		else if (tmpl_word_is(w, wn, "version"))
			part->kind = TMPL_VERSION;
		else if (wn)
			return tmpl_fail(p, at, -EINVAL,
			                 "unknown function \"%.*s\" (secret, version)", (int)wn, w);
		else if (p->pos >= p->len)
			return tmpl_fail(p, open_at, -EINVAL, "unterminated action: no \"}}\"");
		else
			return tmpl_fail(p, at, -EINVAL,
			                 "expected secret \"NAME\", version \"NAME\" or a string");
		size_t before = p->pos;
		tmpl_skip_space(p);
		if (p->pos == before && p->pos < p->len && p->s[p->pos] != '"')
			return tmpl_fail(p, p->pos, -EINVAL, "expected a space after %.*s", (int)wn,
			                 w);
		size_t name_at = p->pos;
		size_t off, n;
		r = tmpl_string(p, &off, &n);
		if (r < 0)
			return r;
		const char *name = p->t->lits + off;
		const char *why = NULL;
		if (names_check(name, n, &why) < 0)
			return tmpl_fail(p, name_at, -EINVAL, "invalid secret name: %s",
			                 why ? why : "not a name");
		p->t->litlen = off; /* the name lives in refs, not in lits */
		r = tmpl_add_ref(p, name_at, name, n, &part->ref);
		if (r < 0)
			return r;
	}
	for (;;) {
		tmpl_skip_space(p);
		if (tmpl_at(p, "}}")) {
			p->pos += 2;
			return 0;
		}
		if (p->pos >= p->len)
			return tmpl_fail(p, open_at, -EINVAL, "unterminated action: no \"}}\"");
		if (p->s[p->pos] != '|')
			return tmpl_fail(p, p->pos, -EINVAL, "expected \"|\" or \"}}\"");
		p->pos++;
		tmpl_skip_space(p);
		size_t fat = p->pos;
		const char *w;
		size_t wn = tmpl_word(p, &w);
		size_t k = 0;
		while (k < TMPL_NFILTER_KINDS && !tmpl_word_is(w, wn, tmpl_filter_names[k]))
			k++;
		if (k == TMPL_NFILTER_KINDS)
			return tmpl_fail(p, fat, -EINVAL,
			                 "unknown filter \"%.*s\" (urlquery, json, base64, trim, "
			                 "shellquote)",
			                 (int)(wn > 32 ? 32 : wn), w);
		if (part->nfilters >= TMPL_FILTERS_MAX)
			return tmpl_fail(p, fat, -E2BIG, "more than %d filters in one action",
			                 TMPL_FILTERS_MAX);
		part->filters[part->nfilters++] = (uint8_t)k;
	}
}

void tmpl_free(tmpl *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrefs; i++)
		free(t->refs[i]);
	free(t->parts);
	secret_bytes_free(t->lits);
	secret_bytes_free(t->src);
	free(t);
}

int tmpl_parse(const char *src, size_t len, tmpl **out, struct tmpl_error *err)
{
	struct tmpl_parser p = {.s = src, .len = len, .err = err};
	if (err)
		memset(err, 0, sizeof(*err));
	if (len > TMPL_SOURCE_MAX)
		return tmpl_fail(&p, 0, -E2BIG, "template longer than %d bytes", TMPL_SOURCE_MAX);
	if (len && memchr(src, '\0', len))
		return tmpl_fail(&p, (size_t)((const char *)memchr(src, '\0', len) - src), -EINVAL,
		                 "a template may not contain a NUL byte");
	tmpl *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	p.t = t;
	int r = -ENOMEM;
	/* A stored template's text may hold literal secrets: locked memory, wiped when freed. */
	t->src = secret_bytes_alloc(len ? len : 1);
	t->lits = secret_bytes_alloc(len ? len : 1);
	t->parts = calloc(2 * TMPL_ACTIONS_MAX + 1, sizeof(*t->parts));
	if (!t->src || !t->lits || !t->parts)
		goto fail;
	memcpy(t->src, src, len);
	t->srclen = len;
	size_t actions = 0;
	while (p.pos < len) {
		const char *o = memmem(src + p.pos, len - p.pos, "{{", 2);
		size_t text_end = o ? (size_t)(o - src) : len;
		if (text_end > p.pos)
			t->parts[t->nparts++] = (struct tmpl_part){
			    .kind = TMPL_TEXT, .off = p.pos, .len = text_end - p.pos};
		p.pos = text_end;
		if (!o)
			break;
		if (actions >= TMPL_ACTIONS_MAX) {
			r = tmpl_fail(&p, p.pos, -E2BIG, "more than %d actions", TMPL_ACTIONS_MAX);
			goto fail;
		}
		size_t open_at = p.pos;
		p.pos += 2;
		struct tmpl_part *part = &t->parts[t->nparts];
		memset(part, 0, sizeof(*part));
		r = tmpl_action(&p, open_at, part);
		if (r < 0)
			goto fail;
		t->nparts++;
		actions++;
	}
	*out = t;
	return 0;
fail:
	tmpl_free(t);
	return r;
}

size_t tmpl_nrefs(const tmpl *t)
{
	return t->nrefs;
}

const char *tmpl_ref(const tmpl *t, size_t i)
{
	return i < t->nrefs ? t->refs[i] : NULL;
}

int tmpl_ref_error(const tmpl *t, size_t i, const char *reason, struct tmpl_error *err)
{
	if (i >= t->nrefs || !reason)
		return -EINVAL;
	unsigned line = 1, col = 1;
	for (size_t k = 0; k < t->refat[i] && k < t->srclen; k++) {
		if (t->src[k] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	*err = (struct tmpl_error){.offset = t->refat[i], .line = line, .col = col};
	snprintf(err->msg, sizeof(err->msg), "secret \"%.*s\" %s", 64, t->refs[i], reason);
	return 0;
}

/* ---- rendering: every buffer is locked secret memory (common/secret.h) ---- */

struct tmpl_buf {
	uint8_t *p;
	size_t len, cap;
};

static void tmpl_buf_free(struct tmpl_buf *b)
{
	secret_bytes_free(b->p); /* wipes; NULL is a no-op */
	*b = (struct tmpl_buf){0};
}

static int tmpl_buf_reserve(struct tmpl_buf *b, size_t add)
{
	if (add > TMPL_OUTPUT_MAX - b->len)
		return -EFBIG;
	size_t need = b->len + add;
	if (b->p && need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	if (cap > TMPL_OUTPUT_MAX)
		cap = TMPL_OUTPUT_MAX;
	uint8_t *n = secret_bytes_alloc(cap);
	if (!n)
		return -ENOMEM;
	if (b->len)
		memcpy(n, b->p, b->len);
	secret_bytes_free(b->p);
	b->p = n;
	b->cap = cap;
	return 0;
}

static int tmpl_buf_put(struct tmpl_buf *b, const void *data, size_t n)
{
	int r = tmpl_buf_reserve(b, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

static int tmpl_buf_putc(struct tmpl_buf *b, char c)
{
	return tmpl_buf_put(b, &c, 1);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid. */
static size_t tmpl_utf8_len(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];
	size_t k;
	uint32_t min, cp;
	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0) {
		k = 2, min = 0x80, cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		k = 3, min = 0x800, cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		k = 4, min = 0x10000, cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < k)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k;
}

static int tmpl_filter(uint8_t f, const uint8_t *in, size_t n, struct tmpl_buf *o)
{
	static const char hex[] = "0123456789ABCDEF";
	int r = 0;
	switch (f) {
	case TMPL_F_URLQUERY:
		for (size_t i = 0; i < n && r == 0; i++) {
			uint8_t c = in[i];
			if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
			    c == '~') {
				r = tmpl_buf_putc(o, (char)c);
			} else {
				char e[3] = {'%', hex[c >> 4], hex[c & 15]};
				r = tmpl_buf_put(o, e, 3);
			}
		}
		return r;
	case TMPL_F_JSON:
		r = tmpl_buf_putc(o, '"');
		for (size_t i = 0; i < n && r == 0;) {
			uint8_t c = in[i];
			if (c >= 0x80) {
				size_t k = tmpl_utf8_len(in + i, n - i);
				if (!k)
					return -EILSEQ; /* a JSON string holds text only */
				r = tmpl_buf_put(o, in + i, k);
				i += k;
				continue;
			}
			if (c == '"' || c == '\\') {
				char e[2] = {'\\', (char)c};
				r = tmpl_buf_put(o, e, 2);
			} else if (c == '\n') {
				r = tmpl_buf_put(o, "\\n", 2);
			} else if (c == '\r') {
				r = tmpl_buf_put(o, "\\r", 2);
			} else if (c == '\t') {
				r = tmpl_buf_put(o, "\\t", 2);
			} else if (c < 0x20 || c == 0x7f) {
				char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
				r = tmpl_buf_put(o, e, 6);
			} else {
				r = tmpl_buf_putc(o, (char)c);
			}
			i++;
		}
		return r ? r : tmpl_buf_putc(o, '"');
	case TMPL_F_BASE64: {
		if (n > (TMPL_OUTPUT_MAX / 4) * 3)
			return -EFBIG;
		size_t b64 = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
		r = tmpl_buf_reserve(o, b64);
		if (r < 0)
			return r;
		sodium_bin2base64((char *)o->p + o->len, b64, in, n,
		                  sodium_base64_VARIANT_ORIGINAL);
		o->len += b64 - 1; /* without the NUL */
		return 0;
	}
	case TMPL_F_TRIM: {
		if (!n) /* in may be NULL (an earlier filter gave nothing): no arithmetic on it */
			return tmpl_buf_reserve(o, 0);
		size_t a = 0, b = n;
		while (a < b && (tmpl_is_space((char)in[a]) || in[a] == '\v' || in[a] == '\f'))
			a++;
		while (b > a &&
		       (tmpl_is_space((char)in[b - 1]) || in[b - 1] == '\v' || in[b - 1] == '\f'))
			b--;
		/* in is NULL for an empty value: no arithmetic on it then */
		return tmpl_buf_put(o, n ? in + a : in, b - a);
	}
	case TMPL_F_SHELLQUOTE:
		if (n && memchr(in, '\0', n))
			return -EILSEQ; /* no shell word holds a NUL */
		r = tmpl_buf_putc(o, '\'');
		for (size_t i = 0; i < n && r == 0; i++)
			r = in[i] == '\'' ? tmpl_buf_put(o, "'\\''", 4)
			                  : tmpl_buf_putc(o, (char)in[i]);
		return r ? r : tmpl_buf_putc(o, '\'');
	}
	return -EINVAL;
}

static int tmpl_render_part(const tmpl *t, const struct tmpl_part *part, tmpl_lookup_fn lookup,
                            void *ud, struct tmpl_buf *out)
{
	const uint8_t *v = NULL;
	size_t n = 0;
	char num[24];
	int r;
	switch (part->kind) {
	case TMPL_TEXT:
		return tmpl_buf_put(out, t->src + part->off, part->len);
	case TMPL_LITERAL:
		v = (const uint8_t *)t->lits + part->off;
		n = part->len;
		break;
	case TMPL_SECRET:
	case TMPL_VERSION: {
		uint64_t version = 0;
		r = lookup(ud, t->refs[part->ref], &v, &n, &version);
		if (r < 0)
			return r;
		if (part->kind == TMPL_VERSION) {
			int k = snprintf(num, sizeof(num), "%" PRIu64, version);
			v = (const uint8_t *)num;
			n = (size_t)k;
		}
		break;
	}
	}
	struct tmpl_buf cur = {0}, next = {0};
	r = 0;
	for (size_t i = 0; i < part->nfilters && r == 0; i++) {
		r = tmpl_filter(part->filters[i], v, n, &next);
		tmpl_buf_free(&cur);
		cur = next;
		next = (struct tmpl_buf){0};
		v = cur.p;
		n = cur.len;
	}
	if (r == 0)
		r = tmpl_buf_put(out, v, n);
	tmpl_buf_free(&cur);
	return r;
}

int tmpl_render(const tmpl *t, tmpl_lookup_fn lookup, void *ud, uint8_t **out, size_t *outlen)
{
	struct tmpl_buf b = {0};
	int r = tmpl_buf_reserve(&b, 0);
	for (size_t i = 0; i < t->nparts && r == 0; i++)
		r = tmpl_render_part(t, &t->parts[i], lookup, ud, &b);
	if (r < 0) {
		tmpl_buf_free(&b);
		return r;
	}
	*out = b.p;
	*outlen = b.len;
	return 0;
}

int tmpl_render_secret(const tmpl *t, tmpl_lookup_fn lookup, void *ud, secret **out)
{
	uint8_t *p = NULL;
	size_t len = 0;
	int r = tmpl_render(t, lookup, ud, &p, &len);
	if (r < 0)
		return r;
	/* One copy, from the growing buffer into a secret of the exact size. */
	*out = secret_from(p, len);
	tmpl_output_free(p, len);
	return *out ? 0 : -ENOMEM;
}

void tmpl_output_free(uint8_t *out, size_t len)
{
	/* len is for the caller's symmetry: the whole allocation is wiped. */
	secret_bytes_free(out);
}
