/* Fuzzes tmpl_parse and tmpl_render (rendered files' templates) with oracles:
 * - text without "{{" is always accepted and renders to itself, byte for byte;
 * - a refusal names a position inside the input, with a reason;
 * - an accepted template names at most TMPL_REFS_MAX distinct, valid secret names;
 * - its rendering (values derived from the names) succeeds, or fails only as -EFBIG (too large)
 *   or -EILSEQ (a value a filter cannot express), and never exceeds TMPL_OUTPUT_MAX. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "broker/rules/tmpl.h"
#include "common/names.h"
#include "fuzz.h"

static int fuzz_lookup(void *ud, const char *name, const uint8_t **val, size_t *len,
                       uint64_t *version)
{
	if (names_check(name, strlen(name), NULL) != 0)
		abort(); /* the parser let an invalid name through */
	*val = (const uint8_t *)name;
	*len = strlen(name);
	*version = *len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	if (!init) {
		if (sodium_init() < 0)
			abort();
		init = 1;
	}
	const char *src = (const char *)data;
	tmpl *t = NULL;
	struct tmpl_error e;
	int r = tmpl_parse(src, size, &t, &e);
	bool plain =
	    size <= TMPL_SOURCE_MAX && !memmem(data, size, "{{", 2) && !memchr(data, '\0', size);
	if (r != 0) {
		if (plain || t || (r != -EINVAL && r != -E2BIG && r != -ENOMEM))
			abort();
		if (r != -ENOMEM && (e.offset > size || !e.msg[0] || e.line < 1 || e.col < 1))
			abort();
		return 0;
	}
	if (tmpl_nrefs(t) > TMPL_REFS_MAX)
		abort();
	for (size_t i = 0; i < tmpl_nrefs(t); i++) {
		const char *n = tmpl_ref(t, i);
		if (!n || names_check(n, strlen(n), NULL) != 0)
			abort();
		for (size_t j = 0; j < i; j++)
			if (strcmp(n, tmpl_ref(t, j)) == 0)
				abort(); /* references are distinct */
	}
	uint8_t *out = NULL;
	size_t n = 0;
	r = tmpl_render(t, fuzz_lookup, NULL, &out, &n);
	tmpl_free(t);
	if (r == -EFBIG || r == -EILSEQ)
		return 0;
	if (r != 0 || !out || n > TMPL_OUTPUT_MAX)
		abort();
	if (plain && (n != size || memcmp(out, data, size) != 0))
		abort();
	tmpl_output_free(out, n);
	return 0;
}
