/* tmpl: rendered files' templates. A pure parser and renderer of a small, safe syntax: no loops,
 * no conditions, no code, no file or environment access. Text is copied as is; an action
 *     {{ secret "NAME" [| FILTER]... }}     the value of secret NAME
 *     {{ version "NAME" [| FILTER]... }}    its current version number, in decimal
 *     {{ "TEXT" [| FILTER]... }}            a string literal (e.g. {{ "{{" }} for a literal "{{")
 * is replaced by its value passed through each filter in turn:
 *     urlquery    percent-encodes all but A-Z a-z 0-9 - . _ ~ (a URL's user, password or query)
 *     json        a JSON string literal, quotes included
 *     base64      standard alphabet, padded
 *     trim        drops leading and trailing ASCII white space
 *     shellquote  one POSIX shell word: 'it'\''s'
 * Inside an action, white space separates words; string literals take \" \\ \n \t \r escapes.
 * NAME must be a valid secret name (common/names).
 *
 * Rendered bytes are secret: they live only in locked memory from common/secret.h (tmpl_output_free
 * and secret_unref wipe).
 * Functions return 0 or a negative errno. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define TMPL_SOURCE_MAX (64 * 1024)   /* bytes of template text */
#define TMPL_ACTIONS_MAX 1024         /* {{ ... }} actions in one template */
#define TMPL_REFS_MAX 64              /* distinct secrets one template may name */
#define TMPL_FILTERS_MAX 8            /* filters in one action's pipeline */
#define TMPL_LITERAL_MAX 4096         /* bytes of one string literal, decoded */
#define TMPL_OUTPUT_MAX (1024 * 1024) /* bytes of one rendering */

typedef struct tmpl tmpl;
/* common/secret.h's type, without its typedef ("secret" is a common variable name above). */
struct secret;

/* Where and why a template was refused. msg never holds secret bytes (parsing sees none). */
struct tmpl_error {
	size_t offset;      /* byte offset in the source */
	unsigned line, col; /* 1-based */
	char msg[160];
};

/* Parses len bytes of src (need not be NUL-terminated). On success *out is a new template (free
 * with tmpl_free). -EINVAL: a syntax error, an unknown filter or function, an invalid secret name;
 * -E2BIG: over a TMPL_* limit; err (if non-NULL) then says where and why. -ENOMEM. */
int tmpl_parse(const char *src, size_t len, tmpl **out, struct tmpl_error *err);
void tmpl_free(tmpl *t);

/* The distinct secret names the template references (by secret or version), in order of first
 * use. Valid while t lives. */
size_t tmpl_nrefs(const tmpl *t);
const char *tmpl_ref(const tmpl *t, size_t i);
/* Fills *err for reference i as a refusal of it: where it is first used (offset, line, col)
 * and msg "secret \"NAME\" REASON" (e.g. reason "does not exist"). 0, or -EINVAL (i out of
 * range). */
int tmpl_ref_error(const tmpl *t, size_t i, const char *reason, struct tmpl_error *err);

/* Gives the current value and version of secret `name` for a rendering. *val stays valid until
 * tmpl_render returns. Returns 0, or a negative errno that ends the rendering (-ENOENT: no such
 * secret, or not visible to the reader). */
typedef int (*tmpl_lookup_fn)(void *ud, const char *name, const uint8_t **val, size_t *len,
                              uint64_t *version);

/* Renders t, asking lookup once per reference and action. On success *out (locked memory from
 * common/secret.h's secret_bytes_alloc, free with tmpl_output_free(*out, *outlen)) holds *outlen
 * bytes; an empty rendering gives a non-NULL *out of length 0. Errors: lookup's, -EFBIG past
 * TMPL_OUTPUT_MAX, -ENOMEM. Nothing is left allocated on error. */
int tmpl_render(const tmpl *t, tmpl_lookup_fn lookup, void *ud, uint8_t **out, size_t *outlen);
/* The same, into a new secret of exactly the rendered length (refcount 1, the caller's: drop it
 * with secret_unref, or hand it to sfs_blob_wrap). 0, lookup's error, -EFBIG or -ENOMEM. */
int tmpl_render_secret(const tmpl *t, tmpl_lookup_fn lookup, void *ud, struct secret **out);
/* Wipes and frees a rendering (NULL is a no-op). */
void tmpl_output_free(uint8_t *out, size_t len);
