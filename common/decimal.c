#include "common/decimal.h"

#include <errno.h>
#include <stdbool.h>

int decimal_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!s || len == 0 || len > DECIMAL_DIGITS_MAX)
		return -EINVAL;
	uint64_t x = 0;
	bool overflow = false;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(unsigned char)s[i] - '0';
		if (d > 9)
			return -EINVAL;
		if (x > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			x = x * 10 + d;
	}
	if (overflow || x < min || x > max)
		return -ERANGE;
	*out = x;
	return 0;
}
