/* anchor: the audit anchor, a one-line file kept outside the database that names the audit
 * chain's head (seq and MAC) with a tag only the store's key can make. A database put back to an
 * older copy of itself (or to a copy that then went its own way) no longer holds that record. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define ANCHOR_MAC_BYTES 32
#define ANCHOR_LINE_MAX 256 /* bytes in an anchor file, newline included */

struct anchor {
	uint64_t seq;                  /* the chain's last record (0: empty chain) */
	uint8_t mac[ANCHOR_MAC_BYTES]; /* that record's MAC (zeros for seq 0) */
	uint8_t tag[ANCHOR_MAC_BYTES]; /* keyed MAC over (seq, mac), made by the store */
};

/* "secretd-audit-anchor 1 SEQ MAC TAG\n" (hex) into buf; its length, or -ENOSPC. */
int anchor_format(const struct anchor *a, char *buf, size_t cap);
/* Parses one line (a trailing newline allowed, nothing else): 0, or -EBADMSG when malformed
 * and -E2BIG above ANCHOR_LINE_MAX. */
int anchor_parse(const char *p, size_t len, struct anchor *out);
/* Reads and parses the file: 0, -ENOENT when absent, -EBADMSG/-E2BIG, -errno. */
int anchor_read(const char *path, struct anchor *out);
/* Replaces the file atomically (write to PATH.tmp, rename; mode 0600): 0 or -errno. */
int anchor_write(const char *path, const struct anchor *a);
