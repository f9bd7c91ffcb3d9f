/* link.c: the worker's side of the keeper channel (see link.h). */
#include "broker/keeper/link.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/keeper/chan.h"
#include "broker/keeper/keeper.h"

#define LINK_FETCH_TIMEOUT_MS 5000

struct fetched {
	uint8_t kind;
	bool taken;
	char id[KEEPER_ID_MAX + 1];
	uint8_t *blob;
	size_t blob_len;
	int fds[KEEPER_FDS_MAX];
	unsigned nfds;
};

struct keeper_link {
	int sock;
	unsigned restarts;
	struct fetched *items;
	size_t n, cap;
};

int keeper_link_open(keeper_link **out)
{
	*out = NULL;
	const char *v = getenv(KEEPER_ENV_FD);
	if (!v)
		return 0;
	char *end;
	long fd = strtol(v, &end, 10);
	if (*v == '\0' || *end || fd < 3 || fd > 65535)
		return -EBADF;
	int type = 0;
	socklen_t tl = sizeof(type);
	if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_SEQPACKET)
		return -EBADF;
	int fl = fcntl((int)fd, F_GETFD);
	if (fl < 0 || fcntl((int)fd, F_SETFD, fl | FD_CLOEXEC) < 0)
		return -EBADF;
	keeper_link *kl = calloc(1, sizeof(*kl));
	if (!kl)
		return -ENOMEM;
	kl->sock = (int)fd;
	const char *r = getenv(KEEPER_ENV_RESTARTS);
	if (r) {
		unsigned long u = strtoul(r, &end, 10);
		if (*r && !*end && u < 1000000)
			kl->restarts = (unsigned)u;
	}
	unsetenv(KEEPER_ENV_FD);
	unsetenv(KEEPER_ENV_RESTARTS);
	*out = kl;
	return 0;
}

unsigned keeper_link_restarts(const keeper_link *kl)
{
	return kl ? kl->restarts : 0;
}

static void link_item_close(struct fetched *f)
{
	for (unsigned i = 0; i < f->nfds; i++)
		close(f->fds[i]);
	f->nfds = 0;
	free(f->blob);
	f->blob = NULL;
}

static int link_recv(keeper_link *kl, uint8_t *buf, struct keeper_msg *m, int *fds)
{
	struct pollfd p = {.fd = kl->sock, .events = POLLIN};
	int n;
	do
		n = poll(&p, 1, LINK_FETCH_TIMEOUT_MS);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	return keeper_chan_recv(kl->sock, buf, m, fds);
}

int keeper_link_fetch(keeper_link *kl)
{
	int r = keeper_chan_send(kl->sock, &(struct keeper_msg){.type = KEEPER_FETCH}, NULL);
	if (r < 0)
		return r;
	for (;;) {
		uint8_t buf[KEEPER_MSG_MAX];
		struct keeper_msg m;
		int fds[KEEPER_FDS_MAX];
		r = link_recv(kl, buf, &m, fds);
		if (r < 0)
			return r;
		if (m.type == KEEPER_END)
			return 0;
		if (m.type != KEEPER_ITEM || kl->n >= KEEPER_HELD_MAX) {
			for (unsigned i = 0; i < m.nfds; i++)
				close(fds[i]);
			return -EPROTO;
		}
		if (kl->n == kl->cap) {
			size_t cap = kl->cap ? 2 * kl->cap : 16;
			struct fetched *nf = realloc(kl->items, cap * sizeof(*nf));
			if (!nf) {
				for (unsigned i = 0; i < m.nfds; i++)
					close(fds[i]);
				return -ENOMEM;
			}
			kl->items = nf;
			kl->cap = cap;
		}
		struct fetched *f = &kl->items[kl->n];
		memset(f, 0, sizeof(*f));
		if (m.blob_len && !(f->blob = malloc(m.blob_len))) {
			for (unsigned i = 0; i < m.nfds; i++)
				close(fds[i]);
			return -ENOMEM;
		}
		if (m.blob_len)
			memcpy(f->blob, m.blob, m.blob_len);
		f->blob_len = m.blob_len;
		f->kind = m.kind;
		memcpy(f->id, m.id, m.id_len + 1);
		memcpy(f->fds, fds, sizeof(int) * m.nfds);
		f->nfds = m.nfds;
		kl->n++;
	}
}

int keeper_link_take(keeper_link *kl, uint8_t kind, const char *id, int *fds, unsigned *nfds,
                     uint8_t *blob, size_t *blob_len)
{
	for (size_t i = 0; kl && i < kl->n; i++) {
		struct fetched *f = &kl->items[i];
		if (f->taken || f->kind != kind || strcmp(f->id, id) != 0)
			continue;
		f->taken = true;
		memcpy(fds, f->fds, sizeof(int) * f->nfds);
		*nfds = f->nfds;
		f->nfds = 0;
		if (blob && blob_len) {
			memcpy(blob, f->blob, f->blob_len);
			*blob_len = f->blob_len;
		}
		link_item_close(f);
		return 0;
	}
	return -ENOENT;
}

void keeper_link_each(keeper_link *kl, uint8_t kind, void (*fn)(void *ud, const char *id), void *ud)
{
	for (size_t i = 0; kl && i < kl->n; i++)
		if (!kl->items[i].taken && kl->items[i].kind == kind)
			fn(ud, kl->items[i].id);
}

size_t keeper_link_drop_untaken(keeper_link *kl)
{
	size_t n = 0;
	for (size_t i = 0; kl && i < kl->n; i++) {
		struct fetched *f = &kl->items[i];
		if (f->taken)
			continue;
		f->taken = true;
		link_item_close(f);
		keeper_link_drop(kl, f->kind, f->id);
		n++;
	}
	return n;
}

int keeper_link_hold(keeper_link *kl, uint8_t kind, const char *id, const int *fds, unsigned nfds,
                     const void *blob, size_t blob_len)
{
	struct keeper_msg m = {.type = KEEPER_HOLD,
	                       .kind = kind,
	                       .id_len = strlen(id),
	                       .blob = blob,
	                       .blob_len = blob_len,
	                       .nfds = nfds};
	if (m.id_len > KEEPER_ID_MAX)
		return -EINVAL;
	memcpy(m.id, id, m.id_len + 1);
	return keeper_chan_send(kl->sock, &m, fds);
}

int keeper_link_drop(keeper_link *kl, uint8_t kind, const char *id)
{
	struct keeper_msg m = {.type = KEEPER_DROP, .kind = kind, .id_len = strlen(id)};
	if (m.id_len > KEEPER_ID_MAX)
		return -EINVAL;
	memcpy(m.id, id, m.id_len + 1);
	return keeper_chan_send(kl->sock, &m, NULL);
}

int keeper_link_ready(keeper_link *kl, pid_t tid)
{
	return keeper_chan_send(
	    kl->sock, &(struct keeper_msg){.type = KEEPER_READY, .result = (int32_t)tid}, NULL);
}

int keeper_link_upgrade(keeper_link *kl)
{
	int r = keeper_chan_send(kl->sock, &(struct keeper_msg){.type = KEEPER_UPGRADE}, NULL);
	if (r < 0)
		return r;
	uint8_t buf[KEEPER_MSG_MAX];
	struct keeper_msg m;
	int fds[KEEPER_FDS_MAX];
	r = link_recv(kl, buf, &m, fds);
	if (r < 0)
		return r;
	if (m.type != KEEPER_RESULT) {
		for (unsigned i = 0; i < m.nfds; i++)
			close(fds[i]);
		return -EPROTO;
	}
	return m.result;
}

void keeper_link_free(keeper_link *kl)
{
	if (!kl)
		return;
	for (size_t i = 0; i < kl->n; i++)
		link_item_close(&kl->items[i]);
	free(kl->items);
	close(kl->sock);
	free(kl);
}
