/* Fuzzes decimal_parse_u64: what it accepts is exactly 1..20 digits whose value is in range,
 * and printing the value back gives the same number. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/decimal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	/* The first byte picks the range, so that both bounds are exercised. */
	uint64_t min = size ? data[0] % 3 : 0, max = size && data[0] & 0x80 ? 1000 : UINT64_MAX;
	uint64_t v = 12345;
	int r = decimal_parse_u64(s, size, min, max, &v);
	if (r != 0 && r != -EINVAL && r != -ERANGE)
		abort();
	if (r != 0) {
		if (v != 12345)
			abort(); /* left alone on error */
		return 0;
	}
	if (size == 0 || size > DECIMAL_DIGITS_MAX || v < min || v > max)
		abort();
	for (size_t i = 0; i < size; i++)
		if (s[i] < '0' || s[i] > '9')
			abort();
	/* Round trip, ignoring leading zeros. */
	size_t z = 0;
	while (z + 1 < size && s[z] == '0')
		z++;
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64, v);
	if (n < 0 || (size_t)n != size - z || memcmp(buf, s + z, size - z) != 0)
		abort();
	return 0;
}
