/* Fuzzes client/wlhttp (what the static workload client reads from the broker) with oracles:
 * a parsed response's body lies inside the input and is what its Content-Length says (or the rest
 * at end of input); a complete response stays complete at end of input; listed names hold no
 * quote, backslash or control byte; an error message is NUL-terminated inside its buffer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/wlhttp.h"
#include "fuzz.h"

static int fuzz_name(void *ud, const char *name, size_t n)
{
	size_t *count = ud;
	for (size_t i = 0; i < n; i++)
		if (name[i] == '"' || name[i] == '\\' || (unsigned char)name[i] < 0x20)
			abort();
	(*count)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	for (int eof = 0; eof <= 1; eof++) {
		struct wlhttp_resp r;
		int rc = wlhttp_parse(s, size, eof, &r);
		if (rc == 0) {
			if (r.status < 100 || r.status > 599 || r.body_off > size ||
			    r.body_len > size - r.body_off || r.body_off + r.body_len != size)
				abort();
			struct wlhttp_resp r2;
			if (!eof &&
			    (wlhttp_parse(s, size, true, &r2) != 0 || r2.status != r.status ||
			     r2.body_off != r.body_off || r2.body_len != r.body_len))
				abort();
		} else if (rc != -EAGAIN && rc != -EBADMSG && rc != -E2BIG &&
		           rc != -EPROTONOSUPPORT) {
			abort();
		} else if (eof && rc == -EAGAIN) {
			abort(); /* at end of input nothing more can come */
		}
	}
	size_t count = 0;
	int rc = wlhttp_list(s, size, fuzz_name, &count);
	if (rc == 0 && count > WLHTTP_LIST_MAX)
		abort();
	char msg[32];
	memset(msg, 'x', sizeof(msg));
	wlhttp_error(s, size, msg, sizeof(msg));
	if (!memchr(msg, '\0', sizeof(msg)))
		abort();
	return 0;
}
