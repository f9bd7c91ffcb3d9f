/* Fuzzes names_check and names_check_pattern against an oracle: the name rule stated again here,
 * independently (split on '/', then look at each segment), so that a names_check that accepts or
 * refuses one name too many aborts. A valid name or pattern must also behave as one. */
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

/* The rule (README, names.h): 1..SECRETD_NAME_MAX bytes; '/'-separated segments, each non-empty,
 * neither "." nor "..", of [A-Za-z0-9._-] only. */
static bool oracle_segment(const char *seg, size_t n)
{
	if (n == 0)
		return false;
	if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (seg[i] == '/' || !fuzz_name_char(seg[i]))
			return false;
	return true;
}

static bool oracle_name(const char *s, size_t size)
{
	if (size == 0 || size > SECRETD_NAME_MAX)
		return false;
	const char *p = s, *end = s + size;
	for (;;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *stop = slash ? slash : end;
		if (!oracle_segment(p, (size_t)(stop - p)))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

/* A pattern: "*", a name, or a name followed by "/\*" (at most SECRETD_NAME_MAX bytes in all). */
static bool oracle_pattern(const char *s, size_t size)
{
	if (size == 1 && s[0] == '*')
		return true;
	if (size > SECRETD_NAME_MAX)
		return false;
	if (size > 2 && s[size - 2] == '/' && s[size - 1] == '*')
		return oracle_name(s, size - 2);
	return oracle_name(s, size);
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
	if ((name == 0) != oracle_name(s, size) || (pat == 0) != oracle_pattern(s, size))
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
