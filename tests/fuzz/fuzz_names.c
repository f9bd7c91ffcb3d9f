/* Fuzzes names_check and names_check_pattern; a valid name or pattern must behave as one. */
#include <stdlib.h>
#include <string.h>

#include "common/limits.h"
#include "common/names.h"
#include "fuzz.h"

static bool fuzz_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-' || c == '/';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *why = NULL;
	int name = names_check(s, size, &why);
	if (name != 0 && (!why || !*why))
		abort();
	int pat = names_check_pattern(s, size, &why);
	if (pat != 0 && (!why || !*why))
		abort();
	if (name == 0) {
		/* What a valid name can never hold: the brief's rules, checked independently. */
		if (size == 0 || size > SECRETD_NAME_MAX || s[0] == '/' || s[size - 1] == '/')
			abort();
		for (size_t i = 0; i < size; i++)
			if (!fuzz_name_char(s[i]))
				abort();
		if (memmem(s, size, "//", 2))
			abort();
		if (pat != 0) /* every name is a pattern */
			abort();
	}
	if (pat != 0)
		return 0;
	char *p = malloc(size + 1);
	if (!p)
		return 0;
	memcpy(p, s, size);
	p[size] = '\0';
	if (!names_pattern_match("*", p) && name == 0)
		abort();
	if (name == 0) {
		if (!names_pattern_match(p, p) || names_pattern_rest(p, p) != p)
			abort();
	} else if (strcmp(p, "*") != 0) {
		/* a subtree "x/\*": matches x/y, not x; rest is y */
		char n[SECRETD_NAME_MAX + 3];
		memcpy(n, p, size - 1);
		n[size - 1] = 'y';
		n[size] = '\0';
		if (size <= SECRETD_NAME_MAX && !names_pattern_match(p, n))
			abort();
		if (size <= SECRETD_NAME_MAX && strcmp(names_pattern_rest(p, n), "y") != 0)
			abort();
		n[size - 2] = '\0';
		if (names_pattern_match(p, n))
			abort();
	}
	free(p);
	return 0;
}
