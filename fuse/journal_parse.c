/* sfs: the journal's parser (format in fuse/sfs.h). Pure and bounded: the adopter reads the
 * journal as outside input (tests/fuzz/fuzz_journal.c). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/names.h"
#include "fuse/sfs.h"

#define JOURNAL_PATH_MAX 255 /* == a view path's limit (sfs_set_view) */

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int sfs_journal_parse(const void *data, size_t len,
                      int (*rec)(void *ctx, uint64_t ino, const char *path, size_t path_len,
                                 bool is_dir),
                      void *ctx, size_t *used)
{
	if (used)
		*used = 0;
	if (len > SFS_JOURNAL_BYTES_MAX)
		return -E2BIG;
	if (len && !data)
		return -EINVAL;
	const uint8_t *p = data;
	if (len < SFS_JOURNAL_MAGIC_LEN) {
		/* torn magic (or empty): valid only as a prefix of it */
		if (len && memcmp(p, SFS_JOURNAL_MAGIC, len) != 0)
			return -EBADMSG;
		return 0;
	}
	if (memcmp(p, SFS_JOURNAL_MAGIC, SFS_JOURNAL_MAGIC_LEN) != 0)
		return -EBADMSG;
	size_t off = SFS_JOURNAL_MAGIC_LEN;
	uint64_t want = SFS_JOURNAL_FIRST_INO;
	if (used)
		*used = off;
	while (len - off >= SFS_JOURNAL_REC_HEADER) {
		const uint8_t *h = p + off;
		uint64_t ino = get_le64(h);
		size_t plen = (size_t)h[8] | (size_t)h[9] << 8;
		uint8_t type = h[10];
		if (ino != want || (type != 'f' && type != 'd') || plen == 0 ||
		    plen > JOURNAL_PATH_MAX)
			return -EBADMSG;
		if (len - off - SFS_JOURNAL_REC_HEADER < plen)
			break; /* torn */
		const char *path = (const char *)h + SFS_JOURNAL_REC_HEADER;
		if (memchr(path, '\0', plen) || names_check(path, plen, NULL) < 0)
			return -EBADMSG;
		if (rec) {
			int r = rec(ctx, ino, path, plen, type == 'd');
			if (r)
				return r;
		}
		off += SFS_JOURNAL_REC_HEADER + plen;
		want++;
		if (used)
			*used = off;
	}
	return 0;
}
