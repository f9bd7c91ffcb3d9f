/* chan.c: keeper messages over a SOCK_SEQPACKET socket (see chan.h). */
#include "broker/keeper/chan.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int keeper_chan_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	return 0;
}

int keeper_chan_send(int sock, const struct keeper_msg *m, const int *fds)
{
	uint8_t buf[KEEPER_MSG_MAX];
	size_t len;
	int r = keeper_msg_encode(m, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	union {
		char b[CMSG_SPACE(sizeof(int) * KEEPER_FDS_MAX)];
		struct cmsghdr align;
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (m->nfds) {
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * m->nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * m->nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * m->nfds);
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? -EPIPE : -errno;
	return (size_t)n == len ? 0 : -EIO;
}

int keeper_chan_recv(int sock, uint8_t *buf, struct keeper_msg *m, int *fds)
{
	struct iovec iov = {.iov_base = buf, .iov_len = KEEPER_MSG_MAX};
	/* Room for more fds than allowed, so that a sender's extra fds arrive (and are closed)
	 * instead of being truncated into the kernel's silence. */
	union {
		char b[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} cm;
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? -ENOTCONN : -errno;
	int got[16];
	unsigned ngot = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && ngot < 16; i++)
			memcpy(&got[ngot++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	}
	if (n == 0 && ngot == 0)
		return -ENOTCONN;
	int r = 0;
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || ngot > KEEPER_FDS_MAX)
		r = -EPROTO;
	else
		r = keeper_msg_decode(buf, (size_t)n, ngot, m);
	if (r < 0) {
		for (unsigned i = 0; i < ngot; i++)
			close(got[i]);
		return -EPROTO;
	}
	memcpy(fds, got, sizeof(int) * ngot);
	return 0;
}
