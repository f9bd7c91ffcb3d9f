/* Fuzzes anchor_parse (the audit anchor file's line): whatever it accepts must format back to
 * the same line, byte for byte (one canonical form: lowercase hex, no leading zeros). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/store/anchor.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct anchor a;
	int r = anchor_parse((const char *)data, size, &a);
	if (r == -E2BIG && size <= ANCHOR_LINE_MAX)
		abort();
	if (r != 0)
		return 0;
	char line[ANCHOR_LINE_MAX + 1];
	int n = anchor_format(&a, line, sizeof(line));
	if (n < 0)
		abort();
	size_t body = size && data[size - 1] == '\n' ? size - 1 : size;
	if ((size_t)n != body + 1 || memcmp(line, data, body) != 0)
		abort();
	struct anchor b;
	if (anchor_parse(line, (size_t)n, &b) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
		abort();
	return 0;
}
