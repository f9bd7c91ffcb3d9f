/* scan's private header: what its files share. The public interface is client/scan.h; the files,
 * one job each:
 *   scan_judge.c    the judgement of one variable (scan_judge) and the masked form (scan_mask)
 *   scan_extract.c  the kind of a file (scan_file_kind) and its variables (scan_buffer: YAML,
 *                   .env, Dockerfile)
 *   scan_walk.c     files and directories (scan_read_file, scan_path)
 *   scan_proc.c     the environment of running processes (scan_proc)
 *   scan_report.c   the findings: added, formatted, as JSON, sorted, freed */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "client/scan.h"

/* Case-insensitive (ASCII) comparisons of s[0..len) with the NUL-terminated lit: lit is a prefix
 * of s, equals s, is a suffix of s (scan_judge.c). */
bool scan_ci_prefix(const char *s, size_t len, const char *lit);
bool scan_ci_eq(const char *s, size_t len, const char *lit);
bool scan_ci_suffix(const char *s, size_t len, const char *lit);

/* A malloc'ed, NUL-terminated copy of s[0..len) for output: control characters shown as '?', cut
 * to max bytes and "..." appended when longer. NULL on ENOMEM; the caller frees it
 * (scan_report.c). */
char *scan_clean_copy(const char *s, size_t len, size_t max);

/* A scan_var_fn whose ctx is a struct scan_report: judges the variable and, when it is a likely
 * secret, adds a finding (file, line, variable, reason, masked value; never the value). 0 (also
 * when SCAN_FINDINGS_MAX findings are already kept) or -ENOMEM (scan_report.c). */
int scan_report_var(void *ctx, const char *file, unsigned line, const char *name, size_t nlen,
                    const char *val, size_t vlen, bool map_form);
