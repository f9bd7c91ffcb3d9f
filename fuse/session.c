/* sfs: a session's life (the /dev/fuse fd, the libfuse session, dispatch, destroy) and its nodes.
 *
 * Inodes: every (path, type) pair gets an inode number the first time it appears in a view and
 * keeps it for the session's life (numbers are never reused; a path that goes and comes back gets
 * its old number again, a path that changes between file and directory gets a new one). Nodes are
 * looked up by number in a flat array. A node that leaves the view becomes "stale": it loses its
 * blob at once and answers ENOENT/ESTALE, but the object stays until the kernel has FORGOTten every
 * lookup of it, so a late request never touches freed memory. */
#include "fuse/sfs_internal.h"

#include <linux/fuse.h>

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

_Static_assert(SFS_FIRST_INO == SFS_JOURNAL_FIRST_INO, "the journal starts at the first inode");
_Static_assert(sizeof(struct fuse_in_header) + sizeof(uint32_t) * 2 <= SFS_INIT_RECORD_MAX,
               "an INIT fits the record");

/* A session's memory and its two fixed nodes (root, .version): no fd, no libfuse yet. */
static int session_alloc(sfs **out, const struct sfs_config *cfg, const struct sfs_ops *ops,
                         void *ud)
{
	*out = NULL;
	if (sodium_init() < 0)
		return -ENOMEM;
	int r = sfs_notifier_start();
	if (r < 0)
		return r;
	sfs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->jfd = -1;
	fs->cfg = *cfg;
	fs->ops = *ops;
	fs->ud = ud;
	fs->entry_timeout = cfg->entry_timeout > 0 ? cfg->entry_timeout : SFS_TIMEOUT_DEFAULT;
	fs->attr_timeout = cfg->attr_timeout > 0 ? cfg->attr_timeout : SFS_TIMEOUT_DEFAULT;
	fs->generation = 1;
	fs->ver_inval = true;
	fs->noopen_seen = 0;
	fs->start = time(NULL);
	/* Handle ids carry a tag that starts at a random value: an fh made by another process
	 * (before a hand-over) matches one of ours only if slot, tag and inode all agree. */
	fs->fhtag = randombytes_random() | 1;
	sfs_gentext_set(fs);
	*out = fs;
	r = sfs_ino_reserve(fs, SFS_FIRST_INO);
	if (r < 0)
		return r;
	fs->nino = SFS_FIRST_INO;
	struct node *root = sfs_node_new(SFS_ROOT_INO, "", 0, true);
	struct node *ver =
	    sfs_node_new(SFS_VERSION_INO, SFS_VERSION_FILE, strlen(SFS_VERSION_FILE), false);
	struct node **kids = malloc(sizeof(*kids));
	if (!root || !ver || !kids) {
		sfs_node_free(root);
		sfs_node_free(ver);
		free(kids);
		return -ENOMEM;
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
	return 0;
}

/* Creates the libfuse session on fd (non-blocking from here on), which it owns from then on,
 * even on failure. */
static int session_attach(sfs *fs, int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int r = -errno;
		close(fd);
		return r;
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
		close(fd);
		return -ENOMEM;
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
		close(fd);
		return -EIO;
	}
	return 0;
}

int sfs_new(sfs **out, const struct sfs_config *cfg, const struct sfs_ops *ops, void *ud)
{
	if (!out || !cfg || !ops || !ops->check)
		return -EINVAL;
	sfs *fs = NULL;
	int r = session_alloc(&fs, cfg, ops, ud);
	if (r < 0)
		goto fail;
	r = sfs_journal_create(fs);
	if (r < 0)
		goto fail;
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	r = session_attach(fs, fd);
	if (r < 0)
		goto fail;
	*out = fs;
	return 0;
fail:
	sfs_destroy(fs);
	return r;
}

/* The INIT of a previous server, replayed: libfuse answers nothing before an INIT and sizes its
 * read buffer from the one it saw. Its reply goes to a long-gone request id; the kernel answers
 * ENOENT, which libfuse ignores. */
static int replay_init(sfs *fs, const void *init, size_t len)
{
	struct fuse_in_header h;
	if (!init || len < sizeof(h) + 2 * sizeof(uint32_t) || len > SFS_INIT_RECORD_MAX)
		return -EINVAL;
	memcpy(&h, init, sizeof(h));
	if (h.len != len || h.opcode != FUSE_INIT)
		return -EINVAL;
	memcpy(fs->init_rec, init, len);
	fs->init_len = len;
	/* zeros after it: libfuse reads the fields its protocol minor implies */
	uint8_t copy[SFS_INIT_RECORD_MAX] = {0};
	memcpy(copy, init, len);
	struct fuse_buf b = {.size = len, .mem = copy};
	fuse_session_process_buf(fs->se, &b);
	return fs->inited ? 0 : -EPROTO;
}

int sfs_adopt(sfs **out, const struct sfs_config *cfg, const struct sfs_ops *ops, void *ud,
              int fuse_fd, const void *init, size_t init_len, int journal_fd, unsigned flags)
{
	if (!out || !cfg || !ops || !ops->check || fuse_fd < 0 || journal_fd < 0 ||
	    (flags & ~SFS_ADOPT_NO_RESEND))
		return -EINVAL;
	sfs *fs = NULL;
	int r = session_alloc(&fs, cfg, ops, ud);
	if (r < 0)
		goto fail;
	fs->adopt_flags = flags;
	fs->jfd = fcntl(journal_fd, F_DUPFD_CLOEXEC, 3);
	if (fs->jfd < 0) {
		r = -errno;
		goto fail;
	}
	r = sfs_journal_replay(fs);
	if (r < 0)
		goto fail;
	int fd = fcntl(fuse_fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	r = session_attach(fs, fd);
	if (r < 0)
		goto fail;
	r = replay_init(fs, init, init_len);
	if (r < 0)
		goto fail;
	fs->adopt_wait_view = true;
	fs->resend = 1;
	*out = fs;
	return 0;
fail:
	sfs_destroy(fs);
	return r;
}

/* FUSE_NOTIFY_RESEND (Linux 6.9; Debian 12's headers stop at 6): a bare notify header. */
#define SFS_NOTIFY_RESEND 7

void sfs_adopt_view_set(sfs *fs)
{
	if (!fs->adopt_wait_view)
		return;
	fs->adopt_wait_view = false;
	/* Without RESEND, requests the dead server had read are never answered; a LOOKUP among
	 * them holds its directory's lock, and an invalidation in that directory would block the
	 * process-wide notifier thread (every mount's invalidations) for good. So this session
	 * sends none: the caller is told (sfs_resend_status) to abandon the connection. */
	if (fs->adopt_flags & SFS_ADOPT_NO_RESEND) {
		fs->resend = -ECANCELED;
		fs->notify_off = true;
		return;
	}
	struct fuse_out_header oh = {.len = sizeof(oh), .error = SFS_NOTIFY_RESEND, .unique = 0};
	ssize_t w;
	do
		w = write(sfs_fd(fs), &oh, sizeof(oh));
	while (w < 0 && errno == EINTR);
	fs->resend = w == (ssize_t)sizeof(oh) ? 0 : w < 0 ? -errno : -EIO;
	if (fs->resend < 0)
		fs->notify_off = true;
}

int sfs_resend_status(const sfs *fs)
{
	return fs ? fs->resend : -EINVAL;
}

ssize_t sfs_init_record(const sfs *fs, void *buf, size_t len)
{
	if (!fs || (!buf && len))
		return -EINVAL;
	if (fs->init_toolong)
		return -E2BIG;
	if (!fs->init_len)
		return -ENOENT;
	if (len < fs->init_len)
		return -ENOSPC;
	memcpy(buf, fs->init_rec, fs->init_len);
	return (ssize_t)fs->init_len;
}

int sfs_journal_fd(const sfs *fs)
{
	return fs && fs->jfd >= 0 ? fs->jfd : -EBADF;
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

/* Keeps the bytes of the kernel's FUSE_INIT (for sfs_init_record) before libfuse handles it. */
static void record_init(sfs *fs, size_t len)
{
	struct fuse_in_header h;
	if (fs->inited || (fs->buf.flags & FUSE_BUF_IS_FD) || len < sizeof(h))
		return;
	memcpy(&h, fs->buf.mem, sizeof(h));
	if (h.opcode != FUSE_INIT)
		return;
	if (len > SFS_INIT_RECORD_MAX || h.len != len) {
		fs->init_toolong = true;
		return;
	}
	memcpy(fs->init_rec, fs->buf.mem, len);
	fs->init_len = len;
}

/* The fd reported an error: not attached to a mount yet (a read would fail with EPERM), or
 * disconnected (ENODEV, or ECONNABORTED after an abort, which libfuse would print). A 1-byte
 * read tells them apart without consuming anything: attached devices refuse a buffer that small
 * with EINVAL. 0 (not attached yet) or -ENODEV. */
static int dispatch_error(sfs *fs, int fd)
{
	char c;
	if (read(fd, &c, 1) < 0 && errno == EPERM)
		return 0;
	fuse_session_exit(fs->se);
	return -ENODEV;
}

static int dispatch(sfs *fs, bool one)
{
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
		record_init(fs, (size_t)r);
		fuse_session_process_buf(fs->se, &fs->buf);
		if (one)
			return 0;
	}
}

int sfs_dispatch(sfs *fs)
{
	if (!fs || !fs->se)
		return -EINVAL;
	if (fs->adopt_wait_view)
		return 0; /* adopted: nothing is answered before the first view (sfs.h) */
	int fd = fuse_session_fd(fs->se);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 0) == 1 && (p.revents & POLLERR))
		return dispatch_error(fs, fd);
	return dispatch(fs, false);
}

int sfs_dispatch_ready(sfs *fs, uint32_t revents)
{
	if (!fs || !fs->se)
		return -EINVAL;
	if (fs->adopt_wait_view)
		return 0;
	if (revents & POLLERR)
		return dispatch_error(fs, fuse_session_fd(fs->se));
	return dispatch(fs, true);
}

static void session_free(sfs *fs)
{
	while (fs->fhs)
		sfs_fh_free(fs, fs->fhs);
	for (size_t i = 0; i < fs->noopen_nph; i++)
		fuse_pollhandle_destroy(fs->noopen_ph[i]);
	/* Closing the only /dev/fuse fd of the connection aborts it: the mount answers ENOTCONN. */
	if (fs->se)
		fuse_session_destroy(fs->se);
	if (fs->jfd >= 0)
		close(fs->jfd);
	free(fs->buf.mem);
	for (size_t i = 0; i < fs->nino; i++)
		sfs_node_free(fs->byino[i]);
	free(fs->byino);
	free(fs->fhtab);
	free(fs->fhfree);
	sfs_smap_free(&fs->paths);
	free(fs);
}

void sfs_destroy(sfs *fs)
{
	if (!fs)
		return;
	sfs_notifier_detach(fs);
	session_free(fs);
}

void sfs_release(sfs *fs)
{
	if (!fs)
		return;
	/* The kernel must not keep pages or entries this process meant to invalidate: the
	 * adopter does not know what was pending. */
	sfs_notifier_drain(fs);
	sfs_notifier_detach(fs);
	session_free(fs);
}

size_t sfs_count(const sfs *fs)
{
	return fs ? fs->nfiles : 0;
}

uint64_t sfs_generation(const sfs *fs)
{
	return fs ? fs->generation : 0;
}
