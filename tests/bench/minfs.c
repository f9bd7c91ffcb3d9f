/* minfs: the reference FUSE filesystem of the read benchmark. The least a libfuse3 low-level
 * filesystem can do to serve two read-only files ("s64": 64 bytes, "s4k": 4096 bytes), on one
 * thread like secretd, so that secretd's per-read cost can be compared with FUSE's own.
 * usage: minfs MOUNTPOINT keep_cache|noopen|uncached
 *   keep_cache  every open reaches us and is answered keep_cache (reads come from the page cache)
 *   noopen      OPEN is answered ENOSYS once: the kernel stops sending opens at all
 *   uncached    every open reaches us and drops the page cache: every read reaches us too */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { MODE_KEEP, MODE_NOOPEN, MODE_UNCACHED };
static int mode;
static char data64[64], data4k[4096];

static const struct {
	const char *name;
	const char *data;
	size_t len;
} files[] = {{"s64", data64, sizeof(data64)}, {"s4k", data4k, sizeof(data4k)}};
#define NFILES (sizeof(files) / sizeof(files[0]))

static void mf_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)files[ino - 2].len;
	}
}

static void mf_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	for (size_t i = 0; parent == FUSE_ROOT_ID && i < NFILES; i++) {
		if (strcmp(name, files[i].name) == 0) {
			struct fuse_entry_param e = {
			    .ino = i + 2, .attr_timeout = 3600, .entry_timeout = 3600};
			mf_stat(e.ino, &e.attr);
			fuse_reply_entry(req, &e);
			return;
		}
	}
	fuse_reply_err(req, ENOENT);
}

static void mf_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	if (ino != FUSE_ROOT_ID && ino - 2 >= NFILES) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	mf_stat(ino, &st);
	fuse_reply_attr(req, &st, 3600);
}

static void mf_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (mode == MODE_NOOPEN) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	fi->keep_cache = mode == MODE_KEEP;
	fuse_reply_open(req, fi);
}

static void mf_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	if (ino - 2 >= NFILES) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	size_t len = files[ino - 2].len;
	if ((size_t)off >= len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = len - (size_t)off < size ? len - (size_t)off : size;
	fuse_reply_buf(req, files[ino - 2].data + off, n);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = mf_lookup,
    .getattr = mf_getattr,
    .open = mf_open,
    .read = mf_read,
};

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: minfs MOUNTPOINT keep_cache|noopen|uncached\n");
		return 2;
	}
	if (strcmp(argv[2], "keep_cache") == 0)
		mode = MODE_KEEP;
	else if (strcmp(argv[2], "noopen") == 0)
		mode = MODE_NOOPEN;
	else if (strcmp(argv[2], "uncached") == 0)
		mode = MODE_UNCACHED;
	else
		return 2;
	memset(data64, 'm', sizeof(data64));
	memset(data4k, 'm', sizeof(data4k));
	char *av[] = {argv[0], "-o", "allow_other,default_permissions,fsname=minfs", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, av);
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		return 1;
	int rc = 1;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, argv[1]) == 0) {
			printf("ready\n");
			fflush(stdout);
			rc = fuse_session_loop(se) ? 1 : 0;
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	return rc;
}
