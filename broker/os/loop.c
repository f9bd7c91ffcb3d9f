#include "broker/os/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define LOOP_PREPARE_MAX 16
#define LOOP_BATCH 64

struct loop_watch {
	int fd;
	loop_fd_cb cb;
	void *ud;
	bool dead;
	struct loop_watch *next; /* on the graveyard list while dead */
};

struct loop {
	int epfd;
	bool quit;
	struct loop_watch **by_fd; /* indexed by fd */
	size_t cap;
	struct loop_watch *graveyard; /* freed after each batch */
	struct {
		loop_prepare_cb cb;
		void *ud;
	} prep[LOOP_PREPARE_MAX];
	size_t nprep;
};

int loop_new(loop **out)
{
	loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int r = -errno;
		free(l);
		return r;
	}
	*out = l;
	return 0;
}

static void loop_reap(loop *l)
{
	while (l->graveyard) {
		struct loop_watch *w = l->graveyard;
		l->graveyard = w->next;
		free(w);
	}
}

void loop_free(loop *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->cap; i++)
		free(l->by_fd[i]);
	loop_reap(l);
	free(l->by_fd);
	close(l->epfd);
	free(l);
}

int loop_add(loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ud)
{
	if (fd < 0)
		return -EBADF;
	if ((size_t)fd >= l->cap) {
		size_t ncap = l->cap ? l->cap : 64;
		while (ncap <= (size_t)fd)
			ncap *= 2;
		struct loop_watch **n = realloc(l->by_fd, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		memset(n + l->cap, 0, (ncap - l->cap) * sizeof(*n));
		l->by_fd = n;
		l->cap = ncap;
	}
	if (l->by_fd[fd])
		return -EEXIST;
	struct loop_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->cb = cb;
	w->ud = ud;
	struct epoll_event ev = {.events = events, .data.ptr = w};
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		free(w);
		return r;
	}
	l->by_fd[fd] = w;
	return 0;
}

int loop_del(loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->cap || !l->by_fd[fd])
		return -ENOENT;
	struct loop_watch *w = l->by_fd[fd];
	l->by_fd[fd] = NULL;
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	w->dead = true;
	w->next = l->graveyard;
	l->graveyard = w;
	return 0;
}

int loop_add_prepare(loop *l, loop_prepare_cb cb, void *ud)
{
	if (l->nprep >= LOOP_PREPARE_MAX)
		return -ENOSPC;
	l->prep[l->nprep].cb = cb;
	l->prep[l->nprep].ud = ud;
	l->nprep++;
	return 0;
}

int loop_run(loop *l)
{
	struct epoll_event evs[LOOP_BATCH];
	while (!l->quit) {
		int timeout = -1;
		for (size_t i = 0; i < l->nprep; i++) {
			int t = l->prep[i].cb(l, l->prep[i].ud);
			if (t >= 0 && (timeout < 0 || t < timeout))
				timeout = t;
		}
		if (l->quit)
			break;
		int n = epoll_wait(l->epfd, evs, LOOP_BATCH, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			struct loop_watch *w = evs[i].data.ptr;
			if (!w->dead)
				w->cb(l, w->fd, evs[i].events, w->ud);
		}
		loop_reap(l);
	}
	l->quit = false; /* a later loop_run runs again */
	return 0;
}

void loop_quit(loop *l)
{
	l->quit = true;
}
