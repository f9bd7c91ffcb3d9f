/* names: the rules for secret names and subtree patterns, shared by daemon and client. Pure. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* Checks a secret name: one or more '/'-separated segments of [A-Za-z0-9._-], no '.' or '..'
 * segment, no empty segment, 1..SECRETD_NAME_MAX bytes, no NUL inside len.
 * Returns 0 or -EINVAL; on -EINVAL *why (if non-NULL) points to a static English reason. */
int names_check(const char *name, size_t len, const char **why);

/* Checks a grant pattern: a valid name, or a valid name followed by "/\*" (a subtree), or "*"
 * (everything). Returns 0 or -EINVAL with *why as above. */
int names_check_pattern(const char *pat, size_t len, const char **why);

/* True when the valid name `name` is matched by the valid pattern `pat`
 * ("a/b" matches only "a/b"; "a/\*" matches "a/b" and "a/b/c", not "a"; "*" matches all). */
bool names_pattern_match(const char *pat, const char *name);

/* For a matched subtree pattern "a/\*" and name "a/b/c" returns a pointer into name to "b/c";
 * for an exact pattern or "*" returns name itself. */
const char *names_pattern_rest(const char *pat, const char *name);
