/* sfs: the inode journal. Every (inode, path) assignment is appended to a memfd before the inode
 * is shown to the kernel, so that a process adopting the connection (sfs_adopt) answers the
 * inode numbers the kernel cached from its predecessors. The parser is pure and bounded: the
 * adopter reads the journal as outside input: journal_parse.c. */
#include "fuse/sfs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

int sfs_journal_create(sfs *fs)
{
	fs->jfd = memfd_create("sfs-journal", MFD_CLOEXEC);
	if (fs->jfd < 0)
		return -errno;
	ssize_t w = pwrite(fs->jfd, SFS_JOURNAL_MAGIC, SFS_JOURNAL_MAGIC_LEN, 0);
	if (w != SFS_JOURNAL_MAGIC_LEN)
		return w < 0 ? -errno : -EIO;
	fs->jlen = SFS_JOURNAL_MAGIC_LEN;
	return 0;
}

int sfs_journal_append(sfs *fs, uint64_t ino, const char *path, size_t len, bool is_dir)
{
	if (len == 0 || len >= SFS_NAME_CAP)
		return -EINVAL;
	size_t n = SFS_JOURNAL_REC_HEADER + len;
	if (fs->jlen + n > SFS_JOURNAL_BYTES_MAX)
		return -E2BIG;
	uint8_t rec[SFS_JOURNAL_REC_HEADER + SFS_NAME_CAP];
	put_le64(rec, ino);
	rec[8] = (uint8_t)len;
	rec[9] = (uint8_t)(len >> 8);
	rec[10] = is_dir ? 'd' : 'f';
	memcpy(rec + SFS_JOURNAL_REC_HEADER, path, len);
	ssize_t w = pwrite(fs->jfd, rec, n, (off_t)fs->jlen);
	if (w == (ssize_t)n) {
		fs->jlen += n;
		return 0;
	}
	int r = w < 0 ? -errno : -EIO;
	/* A partial record must not stay in front of the next one. If even this fails, the
	 * adopter reads the torn tail as the end (its inode was never shown to the kernel). */
	if (ftruncate(fs->jfd, (off_t)fs->jlen) < 0 && r == -EIO)
		r = -errno;
	return r;
}

struct replay {
	sfs *fs;
	uint64_t last; /* last inode number read */
	char key[SFS_NAME_CAP + 1];
};

static int replay_rec(void *ctx, uint64_t ino, const char *path, size_t len, bool is_dir)
{
	struct replay *rp = ctx;
	rp->last = ino;
	memcpy(rp->key, path, len);
	if (is_dir)
		rp->key[len++] = '/';
	rp->key[len] = '\0';
	/* The same path twice: an earlier number was burnt (assigned, never shown to the
	 * kernel: the path map refused it); the later one is the path's. */
	struct smap_slot *s = sfs_smap_find(&rp->fs->paths, rp->key);
	if (s) {
		s->val = ino;
		return 0;
	}
	return sfs_smap_put(&rp->fs->paths, rp->key, len, ino);
}

int sfs_journal_replay(sfs *fs)
{
	struct stat st;
	if (fstat(fs->jfd, &st) < 0)
		return -errno;
	if (st.st_size < 0 || (uint64_t)st.st_size > SFS_JOURNAL_BYTES_MAX)
		return -E2BIG;
	size_t len = (size_t)st.st_size;
	/* Copied, not mapped: whoever else holds the memfd could shrink it under a mapping. */
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf)
		return -ENOMEM;
	size_t got = 0;
	while (got < len) {
		ssize_t r = pread(fs->jfd, buf + got, len - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			free(buf);
			return e;
		}
		if (r == 0)
			break; /* shrunk meanwhile: parse what we have */
		got += (size_t)r;
	}
	struct replay rp = {.fs = fs, .last = SFS_JOURNAL_FIRST_INO - 1};
	size_t used = 0;
	int r = sfs_journal_parse(buf, got, replay_rec, &rp, &used);
	free(buf);
	if (r < 0)
		return r;
	if (used < SFS_JOURNAL_MAGIC_LEN) {
		/* empty or torn magic: start it again */
		if (pwrite(fs->jfd, SFS_JOURNAL_MAGIC, SFS_JOURNAL_MAGIC_LEN, 0) !=
		    SFS_JOURNAL_MAGIC_LEN)
			return -EIO;
		used = SFS_JOURNAL_MAGIC_LEN;
	}
	/* A torn tail is cut off: the next append starts at a record boundary. */
	if ((size_t)st.st_size > used && ftruncate(fs->jfd, (off_t)used) < 0)
		return -errno;
	fs->jlen = used;
	/* inode numbers are consecutive from SFS_FIRST_INO (the parser checks it) */
	r = sfs_ino_reserve(fs, (size_t)rp.last + 1);
	if (r < 0)
		return r;
	fs->nino = (size_t)rp.last + 1;
	fs->adopt_ino_max = rp.last;
	return 0;
}
