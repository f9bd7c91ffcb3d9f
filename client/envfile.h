/* envfile: hand-written parsers for the two line-based formats that carry environment variables,
 * .env files and Dockerfile ENV/ARG instructions. Pure (no I/O); they hand each variable to a
 * callback and never keep a value: values are decoded into a scratch buffer in locked
 * memory that is wiped and freed before the parser returns.
 *
 * .env syntax accepted (one variable per line; lines are LF or CRLF terminated):
 *   - blank lines and lines whose first non-blank character is '#' are ignored;
 *   - an optional "export" prefix followed by blanks;
 *   - NAME: [A-Za-z_][A-Za-z0-9_.-]*, at most ENVFILE_NAME_MAX bytes; blanks around '=' allowed;
 *   - NAME= (nothing after) is an empty value;
 *   - unquoted value: the rest of the line, trailing blanks dropped, " #..." (a '#' after a
 *     blank) starts a comment; no escapes;
 *   - 'single quoted': literal, no escapes, may span lines;
 *   - "double quoted": escapes \n \r \t \\ \" \$ (any other \c stays as the two characters),
 *     may span lines;
 *   - after a closing quote only blanks and an optional "# comment" may follow.
 * A malformed line (no '=', bad name, unterminated quote, text after a closing quote, a NUL
 * byte, a name or value over its limit) is reported to the `bad` callback and skipped; parsing
 * goes on with the next line (for an unterminated quote: the line after the opening one).
 *
 * Dockerfile syntax accepted: lines joined at a trailing '\' (comment lines inside a
 * continuation are dropped, as docker does), instructions ENV and ARG in any case:
 *   ENV A=b C="d e" F='g'     key=value pairs; "..." with \" \\ \$ escapes, '...' literal,
 *                              unquoted values with '\' escaping the next character
 *   ENV A b c                  legacy form: the rest of the instruction is A's value
 *   ARG A=b C                  key=value pairs; a name without a default is no variable
 * The "# escape=" parser directive, heredocs and ${VAR} expansion are not supported (values
 * are handed over as written). Each variable's line is the physical line its name starts on. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define ENVFILE_INPUT_MAX (4u * 1024 * 1024) /* bytes of input to one parser call */
#define ENVFILE_NAME_MAX 255u                /* bytes in a variable name */
#define ENVFILE_VALUE_MAX (128u * 1024)   /* bytes in one decoded value (kernel's MAX_ARG_STRLEN) */
#define ENVFILE_VARS_MAX 10000u           /* variables handed out by one parser call */
#define ENVFILE_LOGICAL_MAX (256u * 1024) /* bytes in one joined Dockerfile instruction */

struct envfile_cb {
	/* One variable: name (nlen bytes, not NUL-terminated), value (vlen bytes in wiped
	 * locked secret memory, NUL-terminated at vlen, valid only during the call), the 1-based
	 * line of the name. A negative return stops the parser, which returns it. */
	int (*var)(void *ctx, const char *name, size_t nlen, const char *val, size_t vlen,
	           unsigned line);
	/* A skipped malformed line (may be NULL): 1-based line and a static English reason. */
	void (*bad)(void *ctx, unsigned line, const char *why);
	void *ctx;
};

/* Parses a .env file. 0, -EFBIG (len > ENVFILE_INPUT_MAX), -E2BIG (more than ENVFILE_VARS_MAX
 * variables: the first ones were handed out), -ENOMEM, or the var callback's negative value. */
int envfile_parse(const char *buf, size_t len, const struct envfile_cb *cb);

/* Parses a Dockerfile's ENV and ARG instructions; returns as envfile_parse. */
int envfile_parse_dockerfile(const char *buf, size_t len, const struct envfile_cb *cb);

/* True when name[0..len) is a .env variable name: [A-Za-z_][A-Za-z0-9_.-]*, 1..ENVFILE_NAME_MAX. */
bool envfile_name_ok(const char *name, size_t len);
