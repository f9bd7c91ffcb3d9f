/* sfs: a session's life (the /dev/fuse fd, the libfuse session, dispatch, destroy) and its nodes.
 *
 * Inodes: every (path, type) pair gets an inode number the first time it appears in a view and
 * keeps it for the session's life (numbers are never reused; a path that goes and comes back gets
 * its old number again, a path that changes between file and directory gets a new one). Nodes are
 * looked up by number in a flat array. A node that leaves the view becomes "stale": it loses its
 * blob at once and answers ENOENT/ESTALE, but the object stays until the kernel has FORGOTten every
 * lookup of it, so a late request never touches freed memory. */
#include "fuse/sfs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct node *sfs_node_get(const sfs *fs, uint64_t ino)
{
	return ino < fs->nino ? fs->byino[ino] : NULL;
}

void sfs_node_free(struct node *n)
{
	if (!n)
		return;
	sfs_blob_unref(n->blob);
	free(n->kids);
	free(n->path);
	free(n);
}

struct node *sfs_node_new(uint64_t ino, const char *path, size_t len, bool is_dir)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->path = strndup(path, len);
	if (!n->path) {
		free(n);
		return NULL;
	}
	const char *slash = strrchr(n->path, '/');
	n->name = slash ? slash + 1 : n->path;
	n->ino = ino;
	n->is_dir = is_dir;
	return n;
}

void sfs_gentext_set(sfs *fs)
{
	int r = snprintf(fs->gentext, sizeof(fs->gentext), "%" PRIu64 "\n", fs->generation);
	fs->gentext_len = r > 0 ? (size_t)r : 0;
}
/* ---- lifecycle ---- */

int sfs_ino_reserve(sfs *fs, size_t need)
{
	if (need <= fs->capino)
		return 0;
	size_t cap = fs->capino ? fs->capino : 64;
	while (cap < need)
		cap *= 2;
	struct node **a = realloc(fs->byino, cap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	memset(a + fs->capino, 0, (cap - fs->capino) * sizeof(*a));
	fs->byino = a;
	fs->capino = cap;
	return 0;
}

/* Gives back the pthread key a new session took (see sfs_new). The session never uses it: we do
 * not enable splice, and every sfs session is created and destroyed on one thread. libfuse deletes
 * it again at fuse_session_destroy: by then the slot is free (EINVAL, harmless) or held by another
 * session's key, which this same function already gave back, so nothing in use is lost. */
static void sfs_release_session_key(pthread_key_t key)
{
	pthread_key_delete(key);
}

int sfs_new(sfs **out, const struct sfs_config *cfg, const struct sfs_ops *ops, void *ud)
{
	if (!out || !cfg || !ops || !ops->check)
		return -EINVAL;
	*out = NULL;
	if (sodium_init() < 0)
		return -ENOMEM;
	int r = sfs_notifier_start();
	if (r < 0)
		return r;
	sfs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->cfg = *cfg;
	fs->ops = *ops;
	fs->ud = ud;
	fs->entry_timeout = cfg->entry_timeout > 0 ? cfg->entry_timeout : SFS_TIMEOUT_DEFAULT;
	fs->attr_timeout = cfg->attr_timeout > 0 ? cfg->attr_timeout : SFS_TIMEOUT_DEFAULT;
	fs->generation = 1;
	fs->noopen_seen = 0;
	fs->start = time(NULL);
	sfs_gentext_set(fs);
	int fd = -1;
	r = sfs_ino_reserve(fs, SFS_FIRST_INO);
	if (r < 0)
		goto fail;
	fs->nino = SFS_FIRST_INO;
	struct node *root = sfs_node_new(SFS_ROOT_INO, "", 0, true);
	struct node *ver =
	    sfs_node_new(SFS_VERSION_INO, SFS_VERSION_FILE, strlen(SFS_VERSION_FILE), false);
	struct node **kids = malloc(sizeof(*kids));
	if (!root || !ver || !kids) {
		sfs_node_free(root);
		sfs_node_free(ver);
		free(kids);
		r = -ENOMEM;
		goto fail;
	}
	root->live = ver->live = true;
	root->parent = SFS_ROOT_INO;
	ver->parent = SFS_ROOT_INO;
	ver->is_version = true;
	ver->mtime = fs->start;
	kids[0] = ver;
	root->kids = kids;
	root->nkids = 1;
	fs->byino[SFS_ROOT_INO] = root;
	fs->byino[SFS_VERSION_INO] = ver;

	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = -errno;
		goto fail;
	}
	char *argv[] = {(char *)"secretd", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	/* libfuse 3.14 takes a pthread key per session (for splice pipes, which we never ask
	 * for), so one process would stop at PTHREAD_KEYS_MAX (1024) sessions. glibc hands out
	 * the lowest free key: find it, let the session take it, then give it back. */
	pthread_key_t probe, check;
	bool have_probe = pthread_key_create(&probe, NULL) == 0;
	if (have_probe)
		pthread_key_delete(probe);
	fs->se = fuse_session_new(&args, &sfs_llops, sizeof(sfs_llops), fs);
	fuse_opt_free_args(&args); /* option parsing replaced argv with an allocated copy */
	if (!fs->se) {
		r = -ENOMEM;
		goto fail;
	}
	if (have_probe && pthread_key_create(&check, NULL) == 0) {
		pthread_key_delete(check);
		if (check != probe)
			sfs_release_session_key(probe);
	}
	char mp[32];
	snprintf(mp, sizeof(mp), "/dev/fd/%d", fd);
	/* Adopts the open fd (libfuse >= 3.3): nothing is mounted here. */
	if (fuse_session_mount(fs->se, mp) != 0) {
		r = -EIO;
		goto fail;
	}
	fd = -1; /* the session owns it now */
	*out = fs;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	sfs_destroy(fs);
	return r;
}

int sfs_fd(const sfs *fs)
{
	return fs && fs->se ? fuse_session_fd(fs->se) : -EBADF;
}

int sfs_mount_data(const sfs *fs, char *buf, size_t len)
{
	if (!fs || !buf)
		return -EINVAL;
	int r = snprintf(buf, len,
	                 "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,"
	                 "default_permissions",
	                 sfs_fd(fs));
	if (r < 0 || (size_t)r >= len)
		return -ENOSPC;
	return 0;
}

int sfs_dispatch(sfs *fs)
{
	if (!fs || !fs->se)
		return -EINVAL;
	int fd = fuse_session_fd(fs->se);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR)) {
		/* Not attached to a mount yet (a read would fail with EPERM), or disconnected
		 * (ENODEV, or ECONNABORTED after an abort, which libfuse would print). A 1-byte
		 * read tells them apart without consuming anything: attached devices refuse a
		 * buffer that small with EINVAL. */
		char c;
		if (read(fd, &c, 1) < 0 && errno == EPERM)
			return 0;
		fuse_session_exit(fs->se);
		return -ENODEV;
	}
	for (;;) {
		if (fuse_session_exited(fs->se))
			return -ENODEV;
		/* libfuse 3.14: -EAGAIN on an empty non-blocking fd (no message printed); a read
		 * failing with ENODEV marks the session exited and returns 0; ENOENT (an
		 * interrupted request) is retried inside. */
		int r = fuse_session_receive_buf(fs->se, &fs->buf);
		if (r == -EINTR)
			continue;
		if (r == -EAGAIN)
			return 0;
		if (r == 0)
			continue; /* exited (checked above) or nothing read */
		if (r == -ENODEV || r == -ECONNABORTED) {
			fuse_session_exit(fs->se);
			return -ENODEV;
		}
		if (r < 0)
			return r;
		fuse_session_process_buf(fs->se, &fs->buf);
	}
}

void sfs_destroy(sfs *fs)
{
	if (!fs)
		return;
	sfs_notifier_detach(fs);

	while (fs->fhs)
		sfs_fh_free(fs, fs->fhs);
	for (size_t i = 0; i < fs->noopen_nph; i++)
		fuse_pollhandle_destroy(fs->noopen_ph[i]);
	/* Closing the only /dev/fuse fd of the connection aborts it: the mount answers ENOTCONN. */
	if (fs->se)
		fuse_session_destroy(fs->se);
	free(fs->buf.mem);
	for (size_t i = 0; i < fs->nino; i++)
		sfs_node_free(fs->byino[i]);
	free(fs->byino);
	sfs_smap_free(&fs->paths);
	free(fs);
}

size_t sfs_count(const sfs *fs)
{
	return fs ? fs->nfiles : 0;
}

uint64_t sfs_generation(const sfs *fs)
{
	return fs ? fs->generation : 0;
}
