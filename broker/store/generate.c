/* generate.c: generated secret values and their charsets. */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "broker/store/store_int.h"

/* ---- generated values ---- */

static const char *const store_charsets[] = {
    [STORE_CHARSET_ALNUM] = "alnum",
    [STORE_CHARSET_HEX] = "hex",
    [STORE_CHARSET_BASE64] = "base64",
    [STORE_CHARSET_ASCII] = "ascii",
};
_Static_assert(sizeof(store_charsets) / sizeof(store_charsets[0]) == STORE_CHARSET_COUNT,
               "STORE_CHARSET_COUNT names every charset");

int store_charset_parse(const char *str, enum store_charset *out)
{
	for (size_t i = 0; str && i < sizeof(store_charsets) / sizeof(store_charsets[0]); i++)
		if (strcmp(str, store_charsets[i]) == 0) {
			*out = (enum store_charset)i;
			return 0;
		}
	return -EINVAL;
}

const char *store_charset_name(enum store_charset c)
{
	return (size_t)c < sizeof(store_charsets) / sizeof(store_charsets[0]) ? store_charsets[c]
	                                                                      : "alnum";
}

int store_generate(enum store_charset cs, size_t length, uint8_t **val)
{
	static const char alnum[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	static const char hex[] = "0123456789abcdef";
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char ascii[95];
	const char *set;
	switch (cs) {
	case STORE_CHARSET_ALNUM:
		set = alnum;
		break;
	case STORE_CHARSET_HEX:
		set = hex;
		break;
	case STORE_CHARSET_BASE64:
		set = b64;
		break;
	case STORE_CHARSET_ASCII:
		for (int c = 0x21; c <= 0x7e; c++)
			ascii[c - 0x21] = (char)c;
		ascii[0x7e - 0x21 + 1] = '\0';
		set = ascii;
		break;
	default:
		return -EINVAL;
	}
	if (!val || length == 0 || length > STORE_GEN_LENGTH_MAX)
		return -EINVAL;
	uint32_t n = (uint32_t)strlen(set);
	uint8_t *v = crypt_alloc(length);
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < length; i++)
		v[i] = (uint8_t)set[randombytes_uniform(n)]; /* unbiased */
	*val = v;
	return 0;
}
