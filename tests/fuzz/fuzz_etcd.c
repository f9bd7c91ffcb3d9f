/* Fuzzes what a cluster node reads from etcd (broker/cluster/etcd.c, broker/store/xrows.c):
 * etcd's JSON answers (etcd_parse), the watch stream cut in arbitrary pieces (etcd_stream_feed),
 * and the store's row encodings found in etcd values (store_xsecret_decode,
 * store_xgrant_decode, store_xkeyring_decode). The first byte picks the decoder (its low two
 * bits; for the stream, the rest is the piece size; 3 with the top bit set: the keyring).
 * Each must stay within its limits and hand out only what it checked. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/cluster/etcd.h"
#include "broker/store/store.h"
#include "fuzz.h"

static void check_kv(const struct etcd_kv *kv)
{
	if (kv->keylen > ETCD_KEY_MAX || kv->vlen > ETCD_VALUE_MAX || !kv->key ||
	    kv->key[kv->keylen] != 0 || (kv->value && kv->value[kv->vlen] != 0) ||
	    kv->mod_revision < 0 || kv->create_revision < 0)
		abort();
}

static void check_answer(int r, const struct etcd_answer *a)
{
	if (r != 0 && r != -EPROTO && r != -E2BIG && r != -ENOMEM)
		abort();
	if (r != 0)
		return;
	if (a->nkvs > ETCD_KVS_MAX || a->nevents > ETCD_EVENTS_MAX || a->revision < 0 ||
	    (a->error && strlen(a->error) > ETCD_ERROR_MAX))
		abort();
	/* the token goes into a header: bounded, non-empty, printable without spaces */
	if (a->token) {
		size_t n = strlen(a->token);
		if (n == 0 || n > ETCD_TOKEN_MAX)
			abort();
		for (size_t i = 0; i < n; i++)
			if (a->token[i] < 0x21 || a->token[i] > 0x7e)
				abort();
	}
	/* members: bounded, NUL-terminated within their fields, no control byte (cluster status) */
	if (a->nmembers > ETCD_MEMBERS_MAX || (a->nmembers && !a->members))
		abort();
	for (size_t i = 0; i < a->nmembers; i++) {
		const char *f[] = {a->members[i].name, a->members[i].client_url};
		size_t cap[] = {sizeof(a->members[i].name), sizeof(a->members[i].client_url)};
		for (int j = 0; j < 2; j++) {
			size_t n = strnlen(f[j], cap[j]);
			if (n == cap[j])
				abort();
			for (size_t q = 0; q < n; q++)
				if ((unsigned char)f[j][q] < 0x20 || f[j][q] == 0x7f)
					abort();
		}
	}
	for (size_t i = 0; i < a->nkvs; i++)
		check_kv(&a->kvs[i]);
	for (size_t i = 0; i < a->nevents; i++) {
		if (a->events[i].type != ETCD_EVENT_PUT && a->events[i].type != ETCD_EVENT_DELETE)
			abort();
		check_kv(&a->events[i].kv);
	}
}

static int on_line(const char *line, size_t len, void *ud)
{
	if (len == 0 || memchr(line, '\n', len) || len > ETCD_ANSWER_MAX)
		abort();
	struct etcd_answer a;
	check_answer(etcd_parse(line, len, &a), &a);
	etcd_answer_free(&a);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	switch (sel % 4) {
	case 0: {
		struct etcd_answer a;
		check_answer(etcd_parse((const char *)data, size, &a), &a);
		etcd_answer_free(&a);
		break;
	}
	case 1: {
		struct etcd_stream st = {0};
		size_t piece = (size_t)(sel >> 2) + 1;
		for (size_t off = 0; off < size; off += piece) {
			size_t n = size - off < piece ? size - off : piece;
			int r = etcd_stream_feed(&st, (const char *)data + off, n, on_line, NULL);
			if (r != 0 && r != -E2BIG && r != -ENOMEM)
				abort();
			if (r)
				break;
		}
		etcd_stream_free(&st);
		break;
	}
	case 2: {
		struct store_xsecret x;
		int r = store_xsecret_decode(data, size, &x);
		if (r != 0 && r != -EBADMSG && r != -E2BIG && r != -ENOMEM)
			abort();
		if (r == 0) {
			if (x.nv == 0 || x.nv > STORE_XROWS_VERSIONS_MAX || x.headlen != 32 ||
			    x.head < data || x.head + x.headlen > data + size)
				abort();
			for (size_t i = 0; i < x.nv; i++) {
				const struct store_xversion *v = &x.v[i];
				if (v->ct < data || v->ct + v->ctlen > data + size ||
				    (i && v->version <= x.v[i - 1].version) || v->version == 0)
					abort();
			}
			free(x.v);
		}
		break;
	}
	default: {
		if (sel & 0x80) {
			struct store_xkeyring k;
			int r = store_xkeyring_decode(data, size, &k);
			if (r != 0 && r != -EBADMSG && r != -E2BIG)
				abort();
			if (r == 0 && (k.n == 0 || !k.macroot || k.macroot < data ||
			               k.keks + k.kekslen != data + size ||
			               (k.salt && strcmp(k.kind, "argon2id13")) ||
			               (k.salt && (k.salt < data || k.salt + 16 > data + size))))
				abort();
			break;
		}
		struct store_grant g;
		uint8_t mac[32];
		int r = store_xgrant_decode(data, size, &g, mac);
		if (r != 0 && r != -EBADMSG && r != -E2BIG)
			abort();
		if (r == 0) {
			if (!g.secret || !g.selector || g.mode > 0777 || g.id <= 0)
				abort();
			free(g.secret);
			free(g.selector);
			free(g.path);
		}
		break;
	}
	}
	return 0;
}
