/* Known-answer tests for the store's on-disk encodings: the AEAD associated data of payloads,
 * data keys, key generations and the MAC root, every MAC message (secret heads, grants,
 * lifecycle rows, label sets, audit records v1/v2/v3, the retention checkpoint, the anchor,
 * container registry rows), the MAC subkey derivation, and the layouts of the stored meta
 * values. Fixed keys and fields -> committed hex. Any change of the format breaks one of these
 * (and would make every existing database fail its checks).
 *
 * The MAC and AD vectors come from an independent implementation of the format,
 * tests/fixtures/store/kat_ref.py, written from the pre-split store.c; the sealed boxes were made
 * once with crypt_seal (random nonces) and are opened here. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/crypto/crypt.h"
#include "broker/store/store_int.h"
#include "tests/unit/runner.h"

/* The fixed MAC key of every MAC vector: 00 01 .. 1f. */
static void kat_key(uint8_t k[CRYPT_KEY_BYTES], uint8_t first)
{
	for (int i = 0; i < CRYPT_KEY_BYTES; i++)
		k[i] = (uint8_t)(first + i);
}

static void kat_hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = '\0';
}

static void kat_unhex(const char *hex, uint8_t *out, size_t *n)
{
	size_t l = strlen(hex) / 2;
	for (size_t i = 0; i < l; i++) {
		unsigned v;
		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	*n = l;
}

/* The buffer's bytes are want (hex). */
static void kat_bytes(const struct store_buf *b, const char *want)
{
	ck_assert(!b->oom);
	char got[4096];
	ck_assert_uint_lt(b->len * 2, sizeof(got));
	kat_hex(b->p, b->len, got);
	ck_assert_str_eq(got, want);
}

/* The MAC under the fixed key of the buffer's bytes is want (hex). Frees and empties the buffer. */
static void kat_mac(struct store_buf *b, const char *want)
{
	ck_assert(!b->oom);
	uint8_t k[CRYPT_KEY_BYTES], mac[CRYPT_MAC_BYTES];
	kat_key(k, 0);
	crypt_mac(k, b->p, b->len, mac);
	char got[2 * CRYPT_MAC_BYTES + 1];
	kat_hex(mac, sizeof(mac), got);
	ck_assert_str_eq(got, want);
	store_buf_free(b);
	*b = (struct store_buf){0};
}

static const uint8_t kat_prev[CRYPT_MAC_BYTES] = {
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
    0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11};

START_TEST(test_ad)
{
	struct store_buf b _cleanup_buf_ = {0};
	ck_assert_int_eq(store_ad_data(&b, 7, "db/password", 3), 0);
	kat_bytes(&b,
	          "000000000000000f736563726574642f646174612f7631000000000000000700000000000000030"
	          "00000000000000b64622f70617373776f7264");
	struct store_buf d _cleanup_buf_ = {0};
	ck_assert_int_eq(store_ad_dkey(&d, 7, 3, 2), 0);
	kat_bytes(&d,
	          "000000000000000f736563726574642f646b65792f763100000000000000070000000000000003"
	          "0000000000000002");
	char ad[32];
	store_ad_kek(ad, sizeof(ad), 2);
	ck_assert_str_eq(ad, "kek|2");
	store_ad_kek(ad, sizeof(ad), 18446744073709551615ULL);
	ck_assert_str_eq(ad, "kek|18446744073709551615");
	ck_assert_str_eq(store_ad_macroot, "mac|root");
}
END_TEST

/* Boxes sealed once under key 80 81 .. 9f: each opens with its AD, and with no other. */
static void kat_open(const char *box, const uint8_t *ad, size_t adlen, const uint8_t *want,
                     size_t wantlen, const uint8_t *bad_ad, size_t bad_adlen)
{
	uint8_t key[CRYPT_KEY_BYTES], ct[256], pt[256];
	size_t n;
	kat_key(key, 0x80);
	kat_unhex(box, ct, &n);
	ck_assert_uint_eq(n, wantlen + CRYPT_SEAL_OVERHEAD);
	ck_assert_int_eq(crypt_open(key, ad, adlen, ct, n, pt), 0);
	ck_assert(memcmp(pt, want, wantlen) == 0);
	ck_assert_int_eq(crypt_open(key, bad_ad, bad_adlen, ct, n, pt), -EBADMSG);
}

START_TEST(test_sealed)
{
	uint8_t dk[CRYPT_KEY_BYTES];
	kat_key(dk, 0xc0);
	struct store_buf a _cleanup_buf_ = {0}, a2 _cleanup_buf_ = {0};
	ck_assert_int_eq(store_ad_data(&a, 7, "db/password", 3), 0);
	ck_assert_int_eq(store_ad_data(&a2, 7, "db/password", 4), 0);
	kat_open(
	    "b5dd1a2c3b21986195fa15a8d5447deef7658602170ffa7b8fb564ade41f24085555c90b2e0c1191a977"
	    "0f97ddba4cc4da82",
	    a.p, a.len, (const uint8_t *)"hunter2-v3", 10, a2.p, a2.len);
	struct store_buf k _cleanup_buf_ = {0}, k2 _cleanup_buf_ = {0};
	ck_assert_int_eq(store_ad_dkey(&k, 7, 3, 2), 0);
	ck_assert_int_eq(store_ad_dkey(&k2, 7, 3, 1), 0);
	kat_open(
	    "fa90745b5867ac1df5a7901c55850a190a02ab9b6a03b3bc6d3de9c2b82e594b966f7aa21814b2866bfc"
	    "8abdff0cc0325f5783c7517c6685a7a862ddb78782925d6b88f5ef26aa0f",
	    k.p, k.len, dk, sizeof(dk), k2.p, k2.len);
	kat_open(
	    "5b9a479eab6510ecafdab321a7188c3d0f6f9b2f5e3ac81cb4934ae8a605e0e2ef6ec0365894928abbc5"
	    "ef4ef3c510ed5c0f0a894af4d6c9d7ab94762827bcdb3a12544afa0182e6",
	    (const uint8_t *)"kek|2", 5, dk, sizeof(dk), (const uint8_t *)"kek|1", 5);
	kat_open(
	    "0d7dc19477e0bae7a4a0b20e8ea864e9e88913115ebe96953181b6acbfb0f91911e8042871ff4690c305"
	    "45995413bdddcdff04da766a294a933b7717be6cebb524009f7e4a7eba93",
	    (const uint8_t *)store_ad_macroot, strlen(store_ad_macroot), dk, sizeof(dk),
	    (const uint8_t *)"kek|0", 5);
}
END_TEST

START_TEST(test_head)
{
	uint8_t k[CRYPT_KEY_BYTES], wrapped[72], cipher[63], dw[CRYPT_MAC_BYTES],
	    dc[CRYPT_MAC_BYTES];
	kat_key(k, 0);
	memset(wrapped, 0xa5, sizeof(wrapped));
	memset(cipher, 0, sizeof(cipher));
	memcpy(cipher, "ciphertext of ten bytes", 23);
	crypt_mac(k, wrapped, sizeof(wrapped), dw);
	crypt_mac(k, cipher, sizeof(cipher), dc);
	char h[2 * CRYPT_MAC_BYTES + 1];
	kat_hex(dw, sizeof(dw), h);
	ck_assert_str_eq(h, "b31eb5b49e52161edc381b6af70baa834ca3b6d80e8d495f0ce81d622562501f");
	const uint64_t versions[] = {2, 3};
	struct store_buf b = {0};
	ck_assert_int_eq(store_codec_head(&b, 7, "db/password", 3, 10, versions, 2, 2, 10, dw, dc),
	                 0);
	kat_mac(&b, "273bc4be3e3f4a748eedffeb81bcfd442ea8ec1117ecc42dba8fdef58959511e");
}
END_TEST

START_TEST(test_grant)
{
	struct store_grant g = {.id = 5,
	                        .secret = "api/*",
	                        .selector = "label:tier=front",
	                        .path = "token.txt",
	                        .mode = 0440,
	                        .uid = 1000,
	                        .gid = 1000,
	                        .flags = 0,
	                        .created = 1796200000};
	struct store_buf b = {0};
	ck_assert_int_eq(store_codec_grant(&b, &g), 0);
	kat_mac(&b, "d492e60ee17bcb1885772dd023335a7598025072ab893623a8f384f38e2020ab");
	struct store_grant g2 = {.id = 6,
	                         .secret = "db/password",
	                         .selector = "name:web",
	                         .path = NULL,
	                         .mode = 0400,
	                         .uid = -1,
	                         .gid = -1,
	                         .flags = STORE_GRANT_PREVIOUS,
	                         .created = 1796200001};
	ck_assert_int_eq(store_codec_grant(&b, &g2), 0);
	kat_mac(&b, "560beae89d45a39f7cc1e66e7747b3c53360d87e0fdc27cd4bc3307cbc674909");
}
END_TEST

START_TEST(test_life)
{
	struct store_lifecycle l = {.expires = 1796300000,
	                            .every = 86400,
	                            .next = 1796286400,
	                            .length = 32,
	                            .charset = STORE_CHARSET_ALNUM,
	                            .exec = "/usr/bin/reload-db"};
	struct store_buf b = {0};
	ck_assert_int_eq(store_codec_life(&b, 7, "db/password", &l), 0);
	kat_mac(&b, "48eba8873b0f972f30ba0e9348d33bc1ab24c7902e6692ffbe800f2f7eec7b71");
	struct store_lifecycle l2 = {.expires = 0,
	                             .every = 3600,
	                             .next = 1796203600,
	                             .length = 64,
	                             .charset = STORE_CHARSET_HEX,
	                             .exec = NULL};
	ck_assert_int_eq(store_codec_life(&b, 8, "api/token", &l2), 0);
	kat_mac(&b, "7823471d0cee9c2e7d781358330486c6d5682f01e030c32e6a8d32f4df4c86e1");
}
END_TEST

/* Labels (schema 007): a set's stored encoding, its MAC message, and the parse of the encoding
 * (refusing an unsorted or duplicated set, a bad key, trailing bytes). */
START_TEST(test_labels)
{
	static const char enc_hex[] =
	    "00000000000000020000000000000003656e76000000000000000470726f6400000000000000047465616d"
	    "00000000000000087061796d656e7473";
	struct store_label v[] = {{.key = "env", .value = "prod"},
	                          {.key = "team", .value = "payments"}};
	struct store_buf b = {0};
	ck_assert_int_eq(store_codec_labels(&b, v, 2), 0);
	kat_bytes(&b, enc_hex);
	struct store_buf m = {0};
	ck_assert_int_eq(store_codec_labels_mac(&m, 7, "db/password", b.p, b.len), 0);
	kat_mac(&m, "6298cb5493a756b7472ce756598a0de3d5d16cfeb3b49a37dee2e4ce4b50f415");
	struct store_label *out = NULL;
	size_t n = 0;
	ck_assert_int_eq(store_codec_labels_parse(b.p, b.len, &out, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(out[1].value, "payments");
	store_labels_free(out, n);
	ck_assert_int_eq(store_codec_labels_parse(b.p, b.len - 1, &out, &n), -EBADMSG);
	store_buf_free(&b);
	b = (struct store_buf){0};
	struct store_label unsorted[] = {v[1], v[0]}, twice[] = {v[0], v[0]},
	                   bad[] = {{.key = "-x", .value = ""}};
	ck_assert_int_eq(store_codec_labels(&b, unsorted, 2), 0);
	ck_assert_int_eq(store_codec_labels_parse(b.p, b.len, &out, &n), -EBADMSG);
	store_buf_free(&b);
	b = (struct store_buf){0};
	ck_assert_int_eq(store_codec_labels(&b, twice, 2), 0);
	ck_assert_int_eq(store_codec_labels_parse(b.p, b.len, &out, &n), -EBADMSG);
	store_buf_free(&b);
	b = (struct store_buf){0};
	ck_assert_int_eq(store_codec_labels(&b, bad, 1), 0);
	ck_assert_int_eq(store_codec_labels_parse(b.p, b.len, &out, &n), -EBADMSG);
	store_buf_free(&b);
	b = (struct store_buf){0};
	ck_assert_int_eq(store_codec_labels(&b, NULL, 0), 0);
	kat_bytes(&b, "0000000000000000");
	ck_assert_int_eq(store_codec_labels_parse(b.p, b.len, &out, &n), 0);
	ck_assert_uint_eq(n, 0);
	store_buf_free(&b);
}
END_TEST

static void kat_audit(uint64_t seq, int64_t time, const char *actor, int64_t pid, const char *exe,
                      const char *action, const char *name, uint64_t version, const char *result,
                      const char *detail, uint64_t count, const uint8_t *prev, const char *want)
{
	struct store_audit_row r = {.seq = seq,
	                            .time = time,
	                            .actor = (char *)actor,
	                            .pid = pid,
	                            .exe = (char *)exe,
	                            .action = (char *)action,
	                            .secret = (char *)name,
	                            .version = version,
	                            .result = (char *)result,
	                            .detail = (char *)detail,
	                            .count = count};
	struct store_buf b = {0};
	ck_assert_int_eq(store_codec_audit(&b, seq, &r, prev), 0);
	kat_mac(&b, want);
}

START_TEST(test_audit)
{
	static const uint8_t zero[CRYPT_MAC_BYTES];
	/* v1: no detail, one event; the first record links to zeros. */
	kat_audit(1, 1796200000, "secretd", 0, "", "put", "db/password", 3, "ok", NULL, 1, zero,
	          "eb41f6f2bc48cfb72b0477041b73ac626247b2a827d6b718ff8d8a11c4d1e8b9");
	kat_audit(2, 1796200001, "uid:0", 42, "/usr/bin/secretctl", "key-rotate", NULL, 2, "ok",
	          NULL, 1, kat_prev,
	          "cba4613e22491219fcb1ee0d6d2883cb99241d5e17444a90436b01281eed715a");
	/* v2: a detail (migration 003). */
	kat_audit(3, 1796200002, "uid:0", 42, "/usr/bin/secretctl", "grant", "db/password", 0, "ok",
	          "selector=name:web mode=0400", 1, kat_prev,
	          "73ae632e9db5727c6019ea9697d4065080814a1574a1cff83b8ed215c6dc3cac");
	/* v3: a count (migration 004), with and without a detail. */
	kat_audit(4, 1796200003, "web", 1234, "/app/server", "fuse-open", "db/password", 3, "ok",
	          NULL, 17, kat_prev,
	          "1c36bd852e3b2cd729e5e0a963dfab82cb17cb2c0fdbe5e4819f01f6c8e538a4");
	kat_audit(5, 1796200004, "web", 1234, "/app/server", "fuse-open", "db/password", 3,
	          STORE_AUDIT_REFUSED, "path=db/password", 2, kat_prev,
	          "9e87938a6d2dd468ba6594826504c15c4f7757ae867e0de0a5d0d989455a2990");
}
END_TEST

START_TEST(test_checkpoint_anchor)
{
	struct store_audit_checkpoint cp = {.seq = 100, .pruned = 250, .time = 1796200005};
	memcpy(cp.mac, kat_prev, sizeof(cp.mac));
	struct store_buf b = {0};
	ck_assert_int_eq(store_codec_checkpoint(&b, &cp), 0);
	kat_mac(&b, "1488ee24a649d4e3881bd6e745a4d3c8b7b6a6e5cb2546d315c1655d5ba62dae");
	ck_assert_int_eq(store_codec_anchor(&b, 101, kat_prev), 0);
	kat_mac(&b, "ee09ccdc6bad7bdcc15782c515a6b45dfcd4cd62f87cd9077ef5e242a77d08b5");
}
END_TEST

/* Registry rows (schema 006): a hook-attached container with labels and a root, a seen-only
 * container's self-mount without either. */
START_TEST(test_container)
{
	struct store_cont_label labels[] = {{"tier", "db"}, {"team", "pay"}};
	struct store_container c = {.id = "cont-a",
	                            .hook = true,
	                            .runtime = "runc",
	                            .name = "app",
	                            .labels = labels,
	                            .nlabels = 2,
	                            .cgroup = "/user.slice/cont-a",
	                            .pid = 4242,
	                            .start_time = 987654321,
	                            .mount = STORE_CONT_MOUNT_HOOK,
	                            .root = "/var/lib/bundle/rootfs",
	                            .target = "/run/secrets",
	                            .uid = 1000,
	                            .gid = 1001,
	                            .wants = true,
	                            .created = 1700000000};
	struct store_buf b = {0};
	ck_assert_int_eq(store_codec_container(&b, &c), 0);
	kat_mac(&b, "af372b9616bf1df192cb1f6ca4a0070aecd00c9ce6b8a874eca96e1e497cd66a");
	struct store_container d = {.id = "cont-b",
	                            .runtime = "docker",
	                            .name = "",
	                            .cgroup = "/docker/cont-b",
	                            .pid = 77,
	                            .start_time = 5,
	                            .mount = STORE_CONT_MOUNT_SELF,
	                            .mount_pid = 77,
	                            .mount_start = 5,
	                            .mount_ns = 4026532000ULL,
	                            .target = "/secrets",
	                            .created = 1700000001};
	ck_assert_int_eq(store_codec_container(&b, &d), 0);
	kat_mac(&b, "184771cf09f88ea0f0f2f67f4d461a9f7bc45579e3ba4ddef6e0eaec8798718d");
}
END_TEST

/* The MAC root's subkeys (crypt_subkey with the store's ids and contexts). */
START_TEST(test_subkeys)
{
	static const struct {
		uint64_t id;
		const char *ctx;
		const char *want;
	} v[] = {
	    {STORE_SUBKEY_HEAD, STORE_SUBKEY_HEAD_CTX,
	     "f25310946fb0689b3846afb88bf184147d0a170393f869552cf49aa8ea7ada63"},
	    {STORE_SUBKEY_GRANT, STORE_SUBKEY_GRANT_CTX,
	     "893188240874bf00b1fe3215dd63e425b258feef0728bdbb7b56293e08a0d0ca"},
	    {STORE_SUBKEY_AUDIT, STORE_SUBKEY_AUDIT_CTX,
	     "a147a993145f3d76402255743809025dea3457be40ae1bd376e8f298adac25d0"},
	    {STORE_SUBKEY_LIFE, STORE_SUBKEY_LIFE_CTX,
	     "ec23c86e8f693ae56a7abffdbcfc838a39f08172132561d76027bcea0ee705c4"},
	    {STORE_SUBKEY_CONT, STORE_SUBKEY_CONT_CTX,
	     "fb7d9c5a002586f6a8baa6cb615b77f7c4cea4d7d273063488f39ec3e1fd4a90"},
	    {STORE_SUBKEY_LABEL, STORE_SUBKEY_LABEL_CTX,
	     "4a9e5dac6dbeba76b57de2d4ec1dee91a2fed0cd4b26fbcae59f05b9417a373f"},
	};
	uint8_t root[CRYPT_KEY_BYTES];
	kat_key(root, 0x40);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t *sub = NULL;
		ck_assert_int_eq(crypt_subkey(root, v[i].id, v[i].ctx, &sub), 0);
		char got[2 * CRYPT_KEY_BYTES + 1];
		kat_hex(sub, CRYPT_KEY_BYTES, got);
		crypt_free(sub);
		ck_assert_str_eq(got, v[i].want);
	}
}
END_TEST

/* Stored meta values: u64s (kek.rotating, kdf.opslimit, kdf.memlimit), the audit chain's head
 * and the retention checkpoint. */
START_TEST(test_meta_values)
{
	struct store_buf b _cleanup_buf_ = {0};
	store_buf_u64(&b, 0x0102030405060708ULL);
	kat_bytes(&b, "0102030405060708");
	ck_assert_uint_eq(store_be64(b.p), 0x0102030405060708ULL);

	struct store_buf h _cleanup_buf_ = {0};
	ck_assert_int_eq(store_codec_audit_head_value(&h, 101, kat_prev), 0);
	kat_bytes(&h, "0000000000000065111111111111111111111111111111111111111111111111111111111111"
	              "1111");
	ck_assert_uint_eq(h.len, STORE_AUDIT_HEAD_LEN);
	uint64_t seq = 0;
	uint8_t mac[CRYPT_MAC_BYTES];
	store_codec_audit_head_parse(h.p, &seq, mac);
	ck_assert_uint_eq(seq, 101);
	ck_assert(memcmp(mac, kat_prev, sizeof(mac)) == 0);

	struct store_audit_checkpoint cp = {.seq = 100, .pruned = 250, .time = 1796200005}, back;
	memcpy(cp.mac, kat_prev, sizeof(cp.mac));
	uint8_t tag[CRYPT_MAC_BYTES];
	memset(tag, 0x22, sizeof(tag));
	struct store_buf c _cleanup_buf_ = {0};
	ck_assert_int_eq(store_codec_checkpoint_value(&c, &cp, tag), 0);
	kat_bytes(&c,
	          "00000000000000641111111111111111111111111111111111111111111111111111111111111111"
	          "00000000000000fa000000006b0fd6452222222222222222222222222222222222222222222222"
	          "222222222222222222");
	ck_assert_uint_eq(c.len, STORE_CP_LEN);
	const uint8_t *t = store_codec_checkpoint_parse(c.p, &back);
	ck_assert(memcmp(&back, &cp, sizeof(cp)) == 0);
	ck_assert(memcmp(t, tag, sizeof(tag)) == 0);
}
END_TEST

/* Templates (schema 005): their own tags, so a template's box never opens as a secret's. */
START_TEST(test_tmpl)
{
	struct store_buf a _cleanup_buf_ = {0}, k _cleanup_buf_ = {0};
	ck_assert_int_eq(store_ad_tmpl_data(&a, 9, "db/url", 4), 0);
	kat_bytes(&a, "0000000000000014736563726574642f746d706c2d646174612f763100000000000000090000"
	              "000000000004000000000000000664622f75726c");
	ck_assert_int_eq(store_ad_tmpl_dkey(&k, 9, 4, 2), 0);
	kat_bytes(&k, "0000000000000014736563726574642f746d706c2d646b65792f76310000000000000009000"
	              "00000000000040000000000000002");
	uint8_t key[CRYPT_KEY_BYTES], wrapped[72], cipher[63], dw[CRYPT_MAC_BYTES],
	    dc[CRYPT_MAC_BYTES];
	kat_key(key, 0);
	memset(wrapped, 0xa5, sizeof(wrapped));
	memset(cipher, 0, sizeof(cipher));
	memcpy(cipher, "ciphertext of ten bytes", 23);
	crypt_mac(key, wrapped, sizeof(wrapped), dw);
	crypt_mac(key, cipher, sizeof(cipher), dc);
	const uint64_t versions[] = {2, 3, 4};
	struct store_buf b = {0};
	ck_assert_int_eq(store_codec_tmpl_head(&b, 9, "db/url", 4, versions, 3, 2, 10, dw, dc), 0);
	kat_mac(&b, "114ab2f7d91cac6b11825c8c7e45c333422a9dfdf8bfb7b6d65d28ade7cc3fc0");
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("store_kat");
	TCase *tc = tcase_create("kat");
	tcase_add_test(tc, test_ad);
	tcase_add_test(tc, test_sealed);
	tcase_add_test(tc, test_head);
	tcase_add_test(tc, test_grant);
	tcase_add_test(tc, test_life);
	tcase_add_test(tc, test_labels);
	tcase_add_test(tc, test_audit);
	tcase_add_test(tc, test_checkpoint_anchor);
	tcase_add_test(tc, test_container);
	tcase_add_test(tc, test_subkeys);
	tcase_add_test(tc, test_meta_values);
	tcase_add_test(tc, test_tmpl);
	suite_add_tcase(s, tc);
	return s;
}
