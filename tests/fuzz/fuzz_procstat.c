/* Fuzzes ident_parse_start with /proc/PID/stat-like text: it never reads past len, accepts only
 * a digit field 22 after the last ')', and leaves *start alone when it refuses. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/os/ident.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1); /* exactly size bytes: ASan sees an overread */
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	uint64_t start = 777;
	int r = ident_parse_start(copy, size, &start);
	if (r != 0 && r != -EINVAL)
		abort();
	if (r < 0 && start != 777)
		abort();
	if (r == 0) {
		if (size > IDENT_STAT_MAX || !memchr(copy, ')', size) || start > INT64_MAX)
			abort();
	}
	free(copy);
	return 0;
}
