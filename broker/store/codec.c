/* codec.c: the byte encodings that are part of the on-disk format: the AEAD associated data of
 * payloads, data keys and key generations, and the messages under every MAC (secret heads,
 * grants, lifecycle rows, audit records, the retention checkpoint and the anchor). Fields are
 * length-prefixed and big-endian; each message starts with its own "secretd/<kind>/vN" tag.
 * Pinned by known-answer tests (tests/unit/test_store_kat.c): changing one breaks every store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/store/store_int.h"
#include "common/labels.h"

void store_buf_add(struct store_buf *b, const void *d, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 128;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

void store_buf_u64(struct store_buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (56 - 8 * i));
	store_buf_add(b, x, sizeof(x));
}

void store_buf_bytes(struct store_buf *b, const void *d, size_t n)
{
	store_buf_u64(b, n);
	store_buf_add(b, d, n);
}

void store_buf_str(struct store_buf *b, const char *s)
{
	store_buf_bytes(b, s, strlen(s));
}

void store_buf_free(struct store_buf *b)
{
	free(b->p);
	b->p = NULL;
}

uint64_t store_be64(const uint8_t x[8])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | x[i];
	return v;
}

/* Payload AD: binds a ciphertext to its secret's immutable id, name and version (not the KEK, so
 * that rotation leaves payloads untouched). */
int store_ad_data(struct store_buf *b, int64_t id, const char *name, uint64_t version)
{
	store_buf_str(b, "secretd/data/v1");
	store_buf_u64(b, (uint64_t)id);
	store_buf_u64(b, version);
	store_buf_str(b, name);
	return b->oom ? -ENOMEM : 0;
}

/* Wrapped data key AD: binds it to (secret id, version, KEK generation). */
int store_ad_dkey(struct store_buf *b, int64_t id, uint64_t version, uint64_t kek_id)
{
	store_buf_str(b, "secretd/dkey/v1");
	store_buf_u64(b, (uint64_t)id);
	store_buf_u64(b, version);
	store_buf_u64(b, kek_id);
	return b->oom ? -ENOMEM : 0;
}

void store_ad_kek(char *ad, size_t n, uint64_t kek_id)
{
	snprintf(ad, n, "kek|%llu", (unsigned long long)kek_id);
}

const char store_ad_macroot[] = "mac|root";

int store_codec_head(struct store_buf *b, int64_t id, const char *name, uint64_t current,
                     int64_t keep, const uint64_t *versions, size_t nversions, uint64_t kek_id,
                     uint64_t size, const uint8_t dw[CRYPT_MAC_BYTES],
                     const uint8_t dc[CRYPT_MAC_BYTES])
{
	store_buf_str(b, "secretd/head/v1");
	store_buf_u64(b, (uint64_t)id);
	store_buf_str(b, name);
	store_buf_u64(b, current);
	store_buf_u64(b, (uint64_t)keep);
	store_buf_u64(b, nversions);
	for (size_t i = 0; i < nversions; i++)
		store_buf_u64(b, versions[i]);
	store_buf_u64(b, kek_id);
	store_buf_u64(b, size);
	store_buf_bytes(b, dw, CRYPT_MAC_BYTES);
	store_buf_bytes(b, dc, CRYPT_MAC_BYTES);
	return b->oom ? -ENOMEM : 0;
}

int store_codec_grant(struct store_buf *b, const struct store_grant *g)
{
	/* v2 from migration 008: the row's generation (rows from before keep gen 0 and v1) */
	store_buf_str(b, g->gen > 0 ? "secretd/grant/v2" : "secretd/grant/v1");
	if (g->gen > 0)
		store_buf_u64(b, (uint64_t)g->gen);
	store_buf_u64(b, (uint64_t)g->id);
	store_buf_str(b, g->secret);
	store_buf_str(b, g->selector);
	store_buf_u64(b, g->path ? 1 : 0);
	store_buf_str(b, g->path ? g->path : "");
	store_buf_u64(b, g->mode);
	store_buf_u64(b, (uint64_t)g->uid);
	store_buf_u64(b, (uint64_t)g->gid);
	store_buf_u64(b, g->flags);
	store_buf_u64(b, (uint64_t)g->created);
	return b->oom ? -ENOMEM : 0;
}

int store_codec_container(struct store_buf *b, const struct store_container *c)
{
	store_buf_str(b, "secretd/container/v1");
	store_buf_str(b, c->id);
	store_buf_u64(b, c->hook ? 1 : 0);
	store_buf_str(b, c->runtime);
	store_buf_str(b, c->name);
	store_buf_str(b, c->cgroup);
	store_buf_u64(b, (uint64_t)c->pid);
	store_buf_u64(b, c->start_time);
	store_buf_u64(b, (uint64_t)c->mount);
	store_buf_u64(b, (uint64_t)c->mount_pid);
	store_buf_u64(b, c->mount_start);
	store_buf_u64(b, c->mount_ns);
	store_buf_u64(b, c->root ? 1 : 0);
	store_buf_str(b, c->root ? c->root : "");
	store_buf_str(b, c->target);
	store_buf_u64(b, c->uid);
	store_buf_u64(b, c->gid);
	store_buf_u64(b, c->wants ? 1 : 0);
	store_buf_u64(b, (uint64_t)c->created);
	store_buf_u64(b, c->nlabels);
	for (size_t i = 0; i < c->nlabels; i++) {
		store_buf_str(b, c->labels[i].key);
		store_buf_str(b, c->labels[i].value);
	}
	return b->oom ? -ENOMEM : 0;
}

int store_codec_life(struct store_buf *b, int64_t id, const char *name,
                     const struct store_lifecycle *l)
{
	/* v2: a cluster row's lifecycle with its generation (life_gens, migration 008) */
	store_buf_str(b, l->gen > 0 ? "secretd/life/v2" : "secretd/life/v1");
	if (l->gen > 0)
		store_buf_u64(b, (uint64_t)l->gen);
	store_buf_u64(b, (uint64_t)id);
	store_buf_str(b, name);
	store_buf_u64(b, (uint64_t)l->expires);
	store_buf_u64(b, (uint64_t)l->every);
	store_buf_u64(b, (uint64_t)l->next);
	store_buf_u64(b, l->length);
	store_buf_str(b, store_charset_name(l->charset));
	store_buf_u64(b, l->exec ? 1 : 0);
	store_buf_str(b, l->exec ? l->exec : "");
	return b->oom ? -ENOMEM : 0;
}

int store_codec_audit(struct store_buf *b, uint64_t seq, const struct store_audit_row *r,
                      const uint8_t prev[CRYPT_MAC_BYTES])
{
	bool v3 = r->count > 1;
	store_buf_str(b, v3          ? "secretd/audit/v3"
	                 : r->detail ? "secretd/audit/v2"
	                             : "secretd/audit/v1");
	store_buf_u64(b, seq);
	store_buf_u64(b, (uint64_t)r->time);
	store_buf_str(b, r->actor ? r->actor : "");
	store_buf_u64(b, (uint64_t)r->pid);
	store_buf_str(b, r->exe ? r->exe : "");
	store_buf_str(b, r->action ? r->action : "");
	store_buf_u64(b, r->secret ? 1 : 0);
	store_buf_str(b, r->secret ? r->secret : "");
	store_buf_u64(b, r->version);
	store_buf_str(b, r->result ? r->result : "");
	if (v3) {
		store_buf_u64(b, r->detail ? 1 : 0);
		store_buf_str(b, r->detail ? r->detail : "");
		store_buf_u64(b, r->count);
	} else if (r->detail) {
		store_buf_str(b, r->detail);
	}
	store_buf_bytes(b, prev, CRYPT_MAC_BYTES);
	return b->oom ? -ENOMEM : 0;
}

int store_codec_checkpoint(struct store_buf *b, const struct store_audit_checkpoint *cp)
{
	store_buf_str(b, "secretd/audit-checkpoint/v1");
	store_buf_u64(b, cp->seq);
	store_buf_bytes(b, cp->mac, CRYPT_MAC_BYTES);
	store_buf_u64(b, cp->pruned);
	store_buf_u64(b, (uint64_t)cp->time);
	return b->oom ? -ENOMEM : 0;
}

int store_codec_anchor(struct store_buf *b, uint64_t seq, const uint8_t mac[CRYPT_MAC_BYTES])
{
	store_buf_str(b, "secretd/anchor/v1");
	store_buf_u64(b, seq);
	store_buf_bytes(b, mac, CRYPT_MAC_BYTES);
	return b->oom ? -ENOMEM : 0;
}

int store_codec_audit_head_value(struct store_buf *b, uint64_t seq,
                                 const uint8_t mac[CRYPT_MAC_BYTES])
{
	store_buf_u64(b, seq);
	store_buf_add(b, mac, CRYPT_MAC_BYTES);
	return b->oom ? -ENOMEM : 0;
}

void store_codec_audit_head_parse(const uint8_t v[STORE_AUDIT_HEAD_LEN], uint64_t *seq,
                                  uint8_t mac[CRYPT_MAC_BYTES])
{
	*seq = store_be64(v);
	memcpy(mac, v + 8, CRYPT_MAC_BYTES);
}

int store_codec_checkpoint_value(struct store_buf *b, const struct store_audit_checkpoint *cp,
                                 const uint8_t tag[CRYPT_MAC_BYTES])
{
	store_buf_u64(b, cp->seq);
	store_buf_add(b, cp->mac, CRYPT_MAC_BYTES);
	store_buf_u64(b, cp->pruned);
	store_buf_u64(b, (uint64_t)cp->time);
	store_buf_add(b, tag, CRYPT_MAC_BYTES);
	return b->oom ? -ENOMEM : 0;
}

const uint8_t *store_codec_checkpoint_parse(const uint8_t v[STORE_CP_LEN],
                                            struct store_audit_checkpoint *cp)
{
	cp->seq = store_be64(v);
	memcpy(cp->mac, v + 8, CRYPT_MAC_BYTES);
	cp->pruned = store_be64(v + 8 + CRYPT_MAC_BYTES);
	cp->time = (int64_t)store_be64(v + 16 + CRYPT_MAC_BYTES);
	return v + 24 + CRYPT_MAC_BYTES;
}

/* ---- templates (schema 005) ---- */

int store_ad_tmpl_data(struct store_buf *b, int64_t id, const char *name, uint64_t version)
{
	store_buf_str(b, "secretd/tmpl-data/v1");
	store_buf_u64(b, (uint64_t)id);
	store_buf_u64(b, version);
	store_buf_str(b, name);
	return b->oom ? -ENOMEM : 0;
}

int store_ad_tmpl_dkey(struct store_buf *b, int64_t id, uint64_t version, uint64_t kek_id)
{
	store_buf_str(b, "secretd/tmpl-dkey/v1");
	store_buf_u64(b, (uint64_t)id);
	store_buf_u64(b, version);
	store_buf_u64(b, kek_id);
	return b->oom ? -ENOMEM : 0;
}

int store_codec_tmpl_head(struct store_buf *b, int64_t id, const char *name, uint64_t current,
                          const uint64_t *versions, size_t nversions, uint64_t kek_id,
                          uint64_t size, const uint8_t dw[CRYPT_MAC_BYTES],
                          const uint8_t dc[CRYPT_MAC_BYTES])
{
	store_buf_str(b, "secretd/tmpl-head/v1");
	store_buf_u64(b, (uint64_t)id);
	store_buf_str(b, name);
	store_buf_u64(b, current);
	store_buf_u64(b, nversions);
	for (size_t i = 0; i < nversions; i++)
		store_buf_u64(b, versions[i]);
	store_buf_u64(b, kek_id);
	store_buf_u64(b, size);
	store_buf_bytes(b, dw, CRYPT_MAC_BYTES);
	store_buf_bytes(b, dc, CRYPT_MAC_BYTES);
	return b->oom ? -ENOMEM : 0;
}

/* ---- labels (schema 007) ---- */

int store_codec_labels(struct store_buf *b, const struct store_label *v, size_t n)
{
	store_buf_u64(b, n);
	for (size_t i = 0; i < n; i++) {
		store_buf_str(b, v[i].key);
		store_buf_str(b, v[i].value);
	}
	return b->oom ? -ENOMEM : 0;
}

int store_codec_labels_mac(struct store_buf *b, int64_t id, const char *name, const uint8_t *enc,
                           size_t enclen)
{
	store_buf_str(b, "secretd/labels/v1");
	store_buf_u64(b, (uint64_t)id);
	store_buf_str(b, name);
	store_buf_bytes(b, enc, enclen);
	return b->oom ? -ENOMEM : 0;
}

/* One u64-length-prefixed string of at most max bytes at *p (end: the end of the input) into a
 * new NUL-terminated copy. */
static int store_codec_take_str(const uint8_t **p, const uint8_t *end, size_t max, char **out)
{
	if ((size_t)(end - *p) < 8)
		return -EBADMSG;
	uint64_t len = store_be64(*p);
	*p += 8;
	if (len > max || len > (uint64_t)(end - *p) || memchr(*p, 0, (size_t)len))
		return -EBADMSG;
	char *s = malloc((size_t)len + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, *p, (size_t)len);
	s[len] = '\0';
	*p += len;
	*out = s;
	return 0;
}

int store_codec_labels_parse(const uint8_t *enc, size_t enclen, struct store_label **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!enc || enclen < 8)
		return -EBADMSG;
	uint64_t count = store_be64(enc);
	if (count > LABELS_MAX)
		return -EBADMSG;
	struct store_label *v = count ? calloc((size_t)count, sizeof(*v)) : NULL;
	if (count && !v)
		return -ENOMEM;
	const uint8_t *p = enc + 8, *end = enc + enclen;
	int r = 0;
	size_t i;
	for (i = 0; r == 0 && i < count; i++) {
		r = store_codec_take_str(&p, end, LABELS_KEY_MAX, &v[i].key);
		if (r == 0)
			r = store_codec_take_str(&p, end, LABELS_VALUE_MAX, &v[i].value);
		if (r == 0 && (labels_key_check(v[i].key, strlen(v[i].key), NULL) < 0 ||
		               labels_value_check(v[i].value, strlen(v[i].value), NULL) < 0 ||
		               (i && strcmp(v[i - 1].key, v[i].key) >= 0)))
			r = -EBADMSG;
	}
	if (r == 0 && p != end)
		r = -EBADMSG;
	if (r < 0) {
		store_labels_free(v, (size_t)count);
		return r;
	}
	*out = v;
	*n = (size_t)count;
	return 0;
}
