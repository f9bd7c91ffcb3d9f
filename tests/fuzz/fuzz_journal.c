/* Fuzzes sfs_journal_parse (fuse/journal_parse.c), the journal an adopting process reads: the
 * only results are 0, -EBADMSG and -E2BIG; what it accepts is consecutive inode numbers from
 * SFS_JOURNAL_FIRST_INO with valid names, and encoding the records again gives back exactly the
 * bytes it says it used; a callback's non-zero return stops it and is returned. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/names.h"
#include "fuse/sfs.h"
#include "fuzz.h"

struct check {
	const uint8_t *data;
	size_t off;
	uint64_t next;
	size_t count, stop_at;
};

static int rec(void *ctx, uint64_t ino, const char *path, size_t len, bool is_dir)
{
	struct check *c = ctx;
	if (ino != c->next || len == 0 || len > 255 || names_check(path, len, NULL) < 0)
		abort();
	/* the record as the writer lays it out */
	const uint8_t *h = c->data + c->off;
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | h[i];
	if (v != ino || (size_t)(h[8] | h[9] << 8) != len || h[10] != (is_dir ? 'd' : 'f') ||
	    (const char *)h + SFS_JOURNAL_REC_HEADER != path)
		abort();
	c->off += SFS_JOURNAL_REC_HEADER + len;
	c->next++;
	if (++c->count == c->stop_at)
		return 42;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct check c = {
	    .data = data, .off = SFS_JOURNAL_MAGIC_LEN, .next = SFS_JOURNAL_FIRST_INO};
	size_t used = 12345;
	int r = sfs_journal_parse(data, size, rec, &c, &used);
	if (r != 0 && r != -EBADMSG && r != -E2BIG)
		abort();
	if (r == 0) {
		if (used > size)
			abort();
		if (size >= SFS_JOURNAL_MAGIC_LEN && used != c.off)
			abort(); /* used covers exactly the records handed out */
		if (size - used >= SFS_JOURNAL_REC_HEADER + 255)
			abort(); /* what is left is a torn record, nothing longer */
	}
	/* stopping early returns the callback's value */
	if (r == 0 && c.count > 0) {
		struct check c2 = {.data = data,
		                   .off = SFS_JOURNAL_MAGIC_LEN,
		                   .next = SFS_JOURNAL_FIRST_INO,
		                   .stop_at = 1};
		if (sfs_journal_parse(data, size, rec, &c2, NULL) != 42 || c2.count != 1)
			abort();
	}
	return 0;
}
