/* labels: the rules for labels on secrets (docker/kubectl-style KEY=VALUE metadata), shared by
 * the daemon's decoders, the store and secretctl. Pure. Labels are metadata, not secret: they
 * select nothing (grants select containers, not secrets) and change no container's view.
 *
 *   key    1..LABELS_KEY_MAX bytes of letters, digits and . _ - and slash, first and last an ASCII
 * letter or digit (so "KEY-" is unambiguous: remove KEY; '=' never is in a key) value
 * 0..LABELS_VALUE_MAX bytes of printable ASCII (0x20..0x7e) count  at most LABELS_MAX per secret
 * Every function takes (pointer, length), reads nothing past len and needs no NUL. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define LABELS_KEY_MAX 128   /* bytes of a key */
#define LABELS_VALUE_MAX 256 /* bytes of a value */
#define LABELS_MAX 64        /* labels on one secret */

/* 0, or -EINVAL with *why (if non-NULL) a static English reason. */
int labels_key_check(const char *key, size_t len, const char **why);
int labels_value_check(const char *value, size_t len, const char **why);

/* One command-line label argument, kubectl style: "KEY=VALUE" (set) or "KEY-" (remove; only
 * when remove_ok). On 0: *klen the key's length (the key starts at arg), *value and *vlen the value
 * (NULL/0 for a removal) and *remove. -EINVAL with *why otherwise. */
int labels_arg_parse(const char *arg, size_t len, bool remove_ok, size_t *klen, const char **value,
                     size_t *vlen, bool *remove, const char **why);
