/* decimal: strict parsing of unsigned decimal integers from outside input (HTTP query
 * arguments, command-line options). Pure, no I/O. Functions return 0 or a negative errno. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define DECIMAL_DIGITS_MAX 20 /* digits of UINT64_MAX */

/* Parses s[0..len): 1..DECIMAL_DIGITS_MAX ASCII digits and nothing else (no sign, space,
 * prefix, NUL or trailing byte; leading zeros are allowed). 0 with *out set when the value is
 * in [min, max]; -EINVAL when s is not such a number, -ERANGE when it is outside [min, max].
 * *out is left alone on error. */
int decimal_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out);
