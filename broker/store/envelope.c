/* store/envelope: one sealed version, the envelope shared by secrets' and templates' versions:
 * a fresh data key seals the payload under the payload AD, the key generation wraps the data
 * key under the data-key AD (the kinds differ only in those ADs, see store_envelope). */
#include <errno.h>

#include <sodium.h>

#include "broker/store/store_int.h"
#include "common/cleanup.h"

const struct store_envelope store_envelope_secret = {.ad_data = store_ad_data,
                                                     .ad_dkey = store_ad_dkey};
const struct store_envelope store_envelope_tmpl = {.ad_data = store_ad_tmpl_data,
                                                   .ad_dkey = store_ad_tmpl_dkey};

int store_envelope_seal(const struct store_envelope *k, int64_t id, const char *name,
                        uint64_t version, const uint8_t *kek, uint64_t kek_id, const uint8_t *val,
                        size_t len, uint8_t *ct, uint8_t wk[STORE_WRAPPED_KEY_BYTES])
{
	_cleanup_secret_bytes_ uint8_t *dk = crypt_alloc(CRYPT_KEY_BYTES);
	if (!dk)
		return -ENOMEM;
	struct store_buf ad _cleanup_buf_ = {0}, kad _cleanup_buf_ = {0};
	randombytes_buf(dk, CRYPT_KEY_BYTES);
	int r = k->ad_data(&ad, id, name, version);
	if (r == 0)
		r = k->ad_dkey(&kad, id, version, kek_id);
	if (r == 0)
		r = crypt_seal(dk, ad.p, ad.len, val, len, ct);
	if (r == 0)
		r = crypt_seal(kek, kad.p, kad.len, dk, CRYPT_KEY_BYTES, wk);
	return r;
}

int store_envelope_open(store *s, const struct store_envelope *k, sqlite3_stmt *st, int64_t id,
                        const char *name, uint64_t version, secret **out)
{
	uint64_t kek_id = (uint64_t)sqlite3_column_int64(st, 0);
	const uint8_t *wk = sqlite3_column_blob(st, 1);
	size_t wklen = (size_t)sqlite3_column_bytes(st, 1);
	const uint8_t *ct = sqlite3_column_blob(st, 2);
	size_t ctlen = (size_t)sqlite3_column_bytes(st, 2);
	int64_t size = sqlite3_column_int64(st, 3);
	const uint8_t *kek = store_kek_find(s, kek_id);
	if (!kek || !wk || wklen != STORE_WRAPPED_KEY_BYTES || !ct || ctlen < CRYPT_SEAL_OVERHEAD ||
	    size < 0 || (uint64_t)size != ctlen - CRYPT_SEAL_OVERHEAD)
		return -EBADMSG;
	_cleanup_secret_bytes_ uint8_t *dk = crypt_alloc(CRYPT_KEY_BYTES);
	if (!dk)
		return -ENOMEM;
	struct store_buf kad _cleanup_buf_ = {0}, ad _cleanup_buf_ = {0};
	int r = k->ad_dkey(&kad, id, version, kek_id);
	if (r == 0)
		r = k->ad_data(&ad, id, name, version);
	if (r < 0)
		return r;
	if (crypt_open(kek, kad.p, kad.len, wk, wklen, dk) < 0)
		return -EBADMSG;
	_cleanup_secret_ secret *val = secret_new((size_t)size);
	if (!val)
		return -ENOMEM;
	if (crypt_open(dk, ad.p, ad.len, ct, ctlen, secret_data(val)) < 0)
		return -EBADMSG;
	*out = TAKE_PTR(val);
	return 0;
}

int store_envelope_rewrap(const struct store_envelope *k, int64_t id, uint64_t version,
                          const uint8_t *old, uint64_t old_id, const uint8_t *wk, size_t wklen,
                          const uint8_t *new_kek, uint64_t new_id,
                          uint8_t nwk[STORE_WRAPPED_KEY_BYTES])
{
	if (!old || !wk || wklen != STORE_WRAPPED_KEY_BYTES)
		return -EBADMSG;
	_cleanup_secret_bytes_ uint8_t *dk = crypt_alloc(CRYPT_KEY_BYTES);
	if (!dk)
		return -ENOMEM;
	struct store_buf oad _cleanup_buf_ = {0}, nad _cleanup_buf_ = {0};
	int r = k->ad_dkey(&oad, id, version, old_id);
	if (r == 0)
		r = k->ad_dkey(&nad, id, version, new_id);
	if (r < 0)
		return r;
	if (crypt_open(old, oad.p, oad.len, wk, wklen, dk) < 0)
		return -EBADMSG;
	return crypt_seal(new_kek, nad.p, nad.len, dk, CRYPT_KEY_BYTES, nwk);
}
