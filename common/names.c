#include "common/names.h"

#include <errno.h>
#include <string.h>

#include "common/limits.h"

static bool names_char_ok(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static int names_fail(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -EINVAL;
}

int names_check(const char *name, size_t len, const char **why)
{
	if (!name || len == 0)
		return names_fail(why, "name is empty");
	if (len > SECRETD_NAME_MAX)
		return names_fail(why, "name is longer than 255 bytes");
	size_t seg_start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || name[i] == '/') {
			size_t seg = i - seg_start;
			if (seg == 0)
				return names_fail(why,
				                  "name has an empty segment (leading, trailing or "
				                  "double '/')");
			if ((seg == 1 && name[seg_start] == '.') ||
			    (seg == 2 && name[seg_start] == '.' && name[seg_start + 1] == '.'))
				return names_fail(why, "name has a '.' or '..' segment");
			seg_start = i + 1;
			continue;
		}
		if (!names_char_ok((unsigned char)name[i]))
			return names_fail(why,
			                  "name may only hold A-Z a-z 0-9 . _ - and '/' between "
			                  "segments");
	}
	return 0;
}

int names_check_pattern(const char *pat, size_t len, const char **why)
{
	if (pat && len == 1 && pat[0] == '*')
		return 0;
	/* A subtree pattern longer than a name could never match one. */
	if (len > SECRETD_NAME_MAX)
		return names_fail(why, "pattern is longer than 255 bytes");
	if (pat && len > 2 && pat[len - 1] == '*' && pat[len - 2] == '/')
		return names_check(pat, len - 2, why);
	return names_check(pat, len, why);
}

bool names_pattern_match(const char *pat, const char *name)
{
	size_t pl = strlen(pat);
	if (pl == 1 && pat[0] == '*')
		return true;
	if (pl > 2 && pat[pl - 1] == '*' && pat[pl - 2] == '/')
		return strncmp(pat, name, pl - 1) == 0 && name[pl - 1] != '\0';
	return strcmp(pat, name) == 0;
}

const char *names_pattern_rest(const char *pat, const char *name)
{
	size_t pl = strlen(pat);
	if (pl == 1 && pat[0] == '*')
		return name;
	if (pl > 2 && pat[pl - 1] == '*' && pat[pl - 2] == '/')
		return name + pl - 1;
	return name;
}
