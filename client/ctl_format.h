/* ctl_format: the --format templates of secretctl's listings, a small Go-template-like language:
 * text with actions {{.Field}} (the field's text), {{json .Field}} (as JSON: a string quoted, a
 * number as it is), {{json .}} (the whole row as JSON) and, for a map field (Labels),
 * {{index .Field "KEY"}} (KEY's value, empty when absent) and {{json .Field}} (the map as a JSON
 * object, from the caller's lookup); spaces inside the braces are allowed,
 * field names match in any case, and \t, \n and \\ in the text stand for a tab, a newline and a
 * backslash. Pure: no I/O, no allocation; every function returns 0 or a negative errno. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define CTL_FORMAT_TEXT_MAX 1024      /* bytes of a template */
#define CTL_FORMAT_PARTS_MAX 128      /* text runs and actions in one template */
#define CTL_FORMAT_FIELD_MAX 32       /* bytes of a field name */
#define CTL_FORMAT_KEY_MAX 128        /* bytes of an index key */
#define CTL_FORMAT_ERR_MAX 128        /* bytes of a parse error, with its NUL */
#define CTL_FORMAT_WHOLE ((size_t)-1) /* a part's field for {{json .}} */

/* A field a template may name. */
struct ctl_format_field {
	const char *name; /* e.g. "Name" */
	bool number;      /* {{json .F}} prints the value as it is (a number), not quoted */
	bool map;         /* a map: {{index .F "KEY"}}; {{json .F}} asks the lookup for JSON */
};

struct ctl_format_part {
	bool action;  /* false: text buf[off, off+len) */
	bool json;    /* {{json ...}} */
	size_t field; /* index into the fields, or CTL_FORMAT_WHOLE */
	size_t off, len;
	bool index; /* {{index .F "KEY"}}: the key is buf[off, off+len) */
};

/* A parsed template: the text with its escapes resolved, and its parts. Self-contained (it
 * points into nothing), may be copied. */
struct ctl_format {
	char buf[CTL_FORMAT_TEXT_MAX];
	size_t n;
	struct ctl_format_part parts[CTL_FORMAT_PARTS_MAX];
	const struct ctl_format_field *fields; /* as given to ctl_format_parse */
};

/* Parses t[0..len) against the nfields fields: 0, or -EINVAL with err (CTL_FORMAT_ERR_MAX
 * bytes) saying why (an unclosed action, an unknown field or function, too long or too many
 * parts: no byte of the template is quoted). out->fields points to fields afterwards. */
int ctl_format_parse(const char *t, size_t len, const struct ctl_format_field *fields,
                     size_t nfields, struct ctl_format *out, char *err);

/* Renders one row: values[i] is field i's text (NULL: empty; for a number field, JSON number
 * text), whole the row as JSON text (for {{json .}}; NULL: "null"). Writes at most cap bytes
 * and a NUL into buf (*outlen the length without the NUL): 0, or -ENOBUFS when it does not
 * fit (buf then holds a truncated, NUL-terminated prefix). */
int ctl_format_render(const struct ctl_format *f, const char *const *values, const char *whole,
                      char *buf, size_t cap, size_t *outlen);

/* A map field's lookup: the value of key (a NUL-terminated key) in field's map, or NULL when
 * absent; with key NULL, the whole map as JSON object text (NULL: "{}"). */
typedef const char *ctl_format_lookup_fn(void *ud, size_t field, const char *key);
/* ctl_format_render with map fields: lookup (may be NULL when the template has no map action)
 * answers {{index .F "KEY"}} and {{json .F}} of a map field. */
int ctl_format_render_map(const struct ctl_format *f, const char *const *values,
                          ctl_format_lookup_fn *lookup, void *ud, const char *whole, char *buf,
                          size_t cap, size_t *outlen);
