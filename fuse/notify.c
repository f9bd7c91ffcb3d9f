/* sfs: the process-wide notifier thread that sends kernel invalidations and poll wake-ups.
 *
 * Invalidations go through one process-wide notifier thread (an invalidation can wait on a page
 * locked by a read that only our serving thread answers). A batch in the queue points at its sfs;
 * sfs_destroy removes its queued batches and, while the notifier is sending one of its batches,
 * keeps serving the connection until that send returns, so the sfs and its fd outlive every use by
 * the notifier without a reference count. */
#include "fuse/sfs_internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

static pthread_mutex_t nlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t nwork = PTHREAD_COND_INITIALIZER;
static pthread_cond_t ndone = PTHREAD_COND_INITIALIZER;
static struct nbatch *nhead, **ntail = &nhead;
static const sfs *ninflight;
static bool nrunning, nstopping;
static pthread_t nthread;

void sfs_nbatch_free(struct nbatch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		if (b->items[i].kind == N_POLL)
			fuse_pollhandle_destroy(b->items[i].ph);
	free(b);
}

static void nbatch_send(struct nbatch *b)
{
	struct fuse_session *se = b->fs->se;
	/* Errors are expected and harmless: ENOENT when the kernel has nothing cached, ENODEV
	 * after the connection ended. */
	for (size_t i = 0; i < b->n; i++) {
		struct nitem *it = &b->items[i];
		switch (it->kind) {
		case N_INODE:
			fuse_lowlevel_notify_inval_inode(se, it->ino, 0, 0);
			break;
		case N_ENTRY:
			fuse_lowlevel_notify_inval_entry(se, it->parent, it->name, it->namelen);
			break;
		case N_DELETE:
			if (fuse_lowlevel_notify_delete(se, it->parent, it->ino, it->name,
			                                it->namelen) == -ENOTEMPTY)
				fuse_lowlevel_notify_inval_entry(se, it->parent, it->name,
				                                 it->namelen);
			break;
		case N_POLL:
			fuse_lowlevel_notify_poll(it->ph);
			break;
		}
	}
}

static void *notifier_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&nlock);
	for (;;) {
		if (!nhead) {
			if (nstopping)
				break;
			pthread_cond_wait(&nwork, &nlock);
			continue;
		}
		struct nbatch *b = nhead;
		nhead = b->next;
		if (!nhead)
			ntail = &nhead;
		ninflight = b->fs;
		pthread_mutex_unlock(&nlock);
		nbatch_send(b);
		sfs_nbatch_free(b);
		pthread_mutex_lock(&nlock);
		ninflight = NULL;
		pthread_cond_broadcast(&ndone);
	}
	pthread_mutex_unlock(&nlock);
	return NULL;
}

static int notifier_start_locked(void)
{
	if (nrunning)
		return 0;
	sigset_t all, old;
	sigfillset(&all);
	/* The thread takes no signals: the broker's signal handling stays on its own thread. */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&nthread, NULL, notifier_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return -r;
	nrunning = true;
	return 0;
}

int sfs_notifier_start(void)
{
	pthread_mutex_lock(&nlock);
	int r = notifier_start_locked();
	pthread_mutex_unlock(&nlock);
	return r;
}

void sfs_notifier_stop(void)
{
	pthread_mutex_lock(&nlock);
	if (!nrunning || nstopping) {
		pthread_mutex_unlock(&nlock);
		return;
	}
	nstopping = true; /* the thread drains the queue first */
	pthread_cond_signal(&nwork);
	pthread_mutex_unlock(&nlock);
	pthread_join(nthread, NULL);
	pthread_mutex_lock(&nlock);
	nrunning = false;
	nstopping = false;
	pthread_mutex_unlock(&nlock);
}

int sfs_notifier_flush_timeout(int timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	if (timeout_ms >= 0) {
		dl.tv_sec += timeout_ms / 1000;
		dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
	}
	int r = 0;
	pthread_mutex_lock(&nlock);
	while ((nhead || ninflight) && nrunning) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&ndone, &nlock);
		} else if (pthread_cond_timedwait(&ndone, &nlock, &dl) == ETIMEDOUT) {
			r = (nhead || ninflight) ? -ETIMEDOUT : 0;
			break;
		}
	}
	pthread_mutex_unlock(&nlock);
	return r;
}

void sfs_notifier_flush(void)
{
	sfs_notifier_flush_timeout(-1);
}

void sfs_notifier_queue(struct nbatch *b)
{
	pthread_mutex_lock(&nlock);
	if (notifier_start_locked() < 0) {
		/* No thread: the kernel keeps stale caches until timeouts expire. Nothing better
		 * to do without risking the deadlock the thread exists for. */
		pthread_mutex_unlock(&nlock);
		sfs_nbatch_free(b);
		return;
	}
	b->next = NULL;
	*ntail = b;
	ntail = &b->next;
	pthread_cond_signal(&nwork);
	pthread_mutex_unlock(&nlock);
}

void sfs_queue_inval_inode(sfs *fs, uint64_t ino)
{
	if (!fs->inited || fs->notify_off)
		return;
	struct nbatch *b = calloc(1, sizeof(*b) + sizeof(b->items[0]));
	if (!b)
		return; /* the next rotation invalidates again */
	b->fs = fs;
	b->n = b->cap = 1;
	b->items[0].kind = N_INODE;
	b->items[0].ino = ino;
	sfs_notifier_queue(b);
}

void sfs_notifier_detach(sfs *fs)
{
	/* Drop our queued batches; wait out a batch being sent, serving meanwhile: the send may
	 * wait on a page locked by a read only we can answer. */
	pthread_mutex_lock(&nlock);
	struct nbatch **pp = &nhead;
	ntail = &nhead;
	while (*pp) {
		struct nbatch *b = *pp;
		if (b->fs == fs) {
			*pp = b->next;
			sfs_nbatch_free(b);
		} else {
			ntail = &b->next;
			pp = &b->next;
		}
	}
	while (ninflight == fs) {
		pthread_mutex_unlock(&nlock);
		struct pollfd p = {.fd = sfs_fd(fs), .events = POLLIN};
		if (fs->se && poll(&p, 1, 20) > 0)
			sfs_dispatch(fs);
		pthread_mutex_lock(&nlock);
	}
	pthread_cond_broadcast(&ndone);
	pthread_mutex_unlock(&nlock);
}

void sfs_notifier_drain(sfs *fs)
{
	/* Serving meanwhile: a send may wait on a page locked by a read only we answer. */
	pthread_mutex_lock(&nlock);
	for (;;) {
		bool queued = ninflight == fs;
		for (struct nbatch *b = nhead; b && !queued; b = b->next)
			queued = b->fs == fs;
		if (!queued || !nrunning)
			break;
		pthread_mutex_unlock(&nlock);
		struct pollfd p = {.fd = sfs_fd(fs), .events = POLLIN};
		if (fs->se && poll(&p, 1, 20) > 0 && sfs_dispatch(fs) == -ENODEV) {
			pthread_mutex_lock(&nlock);
			break; /* the connection ended: nothing left to invalidate */
		}
		pthread_mutex_lock(&nlock);
	}
	pthread_mutex_unlock(&nlock);
}
