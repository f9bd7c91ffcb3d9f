/* chan.c: privsep messages over a SOCK_SEQPACKET socket (see chan.h). */
#include "broker/privsep/chan.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PRIVSEP_RECV_FDS 8 /* room for more fds than allowed: extras arrive and are closed */

int privsep_chan_pair(int sv[2], size_t sndbuf)
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (sndbuf) {
		int v = sndbuf > (size_t)1 << 30 ? 1 << 30 : (int)sndbuf;
		if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0 &&
		    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)) < 0) {
			int e = -errno;
			close(sv[0]);
			close(sv[1]);
			return e;
		}
	}
	return 0;
}

int privsep_chan_send(int sock, const struct privsep_msg *m, int fd, int flags)
{
	uint8_t head[PRIVSEP_HEADER + PRIVSEP_PATH_MAX];
	size_t len;
	int r = privsep_msg_encode_head(m, head, sizeof(head), &len);
	if (r < 0)
		return r;
	struct iovec iov[2] = {{.iov_base = head, .iov_len = len},
	                       {.iov_base = (void *)m->body, .iov_len = m->body_len}};
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = m->body_len ? 2 : 1};
	if (m->nfds) {
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? -EPIPE : errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return (size_t)n == len + m->body_len ? 0 : -EIO;
}

int privsep_chan_recv(int sock, uint8_t *buf, size_t cap, size_t body_max, int flags,
                      struct privsep_msg *m, int *fd)
{
	*fd = -1;
	struct iovec iov = {.iov_base = buf, .iov_len = cap};
	union {
		char b[CMSG_SPACE(sizeof(int) * PRIVSEP_RECV_FDS)];
		struct cmsghdr align;
	} cm;
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof(cm.b)};
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? -ENOTCONN : errno == EWOULDBLOCK ? -EAGAIN : -errno;
	int got[PRIVSEP_RECV_FDS];
	unsigned ngot = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && ngot < PRIVSEP_RECV_FDS; i++)
			memcpy(&got[ngot++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
	}
	if (n == 0 && ngot == 0)
		return -ENOTCONN;
	int r;
	if (mh.msg_flags & MSG_TRUNC || ngot > PRIVSEP_FDS_MAX) {
		r = -EPROTO;
	} else if (mh.msg_flags & MSG_CTRUNC && ngot == 0) {
		/* The fd did not fit in our table: answer the request (not the sender's fault). */
		r = privsep_msg_decode(buf, (size_t)n, 1, body_max, m);
		if (r == 0 && privsep_has_fd(m->type)) {
			m->nfds = 0;
			return -EMFILE;
		}
		r = -EPROTO;
	} else {
		r = privsep_msg_decode(buf, (size_t)n, ngot, body_max, m);
	}
	if (r < 0) {
		for (unsigned i = 0; i < ngot; i++)
			close(got[i]);
		return -EPROTO;
	}
	if (ngot)
		*fd = got[0];
	return 0;
}
