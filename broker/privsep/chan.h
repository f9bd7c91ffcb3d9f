/* privsep/chan: one privsep message (privsep/msg.h) per SOCK_SEQPACKET datagram, a request's fd
 * beside it (SCM_RIGHTS). Received fds are close-on-exec. Functions return 0 or a negative
 * errno. */
#pragma once
#include <stddef.h>

#include "broker/privsep/msg.h"

/* A connected pair (AF_UNIX, SOCK_SEQPACKET, close-on-exec). sndbuf: the daemon's end's send
 * buffer (SO_SNDBUFFORCE, else SO_SNDBUF) so that a REPLY of the largest value fits in one
 * datagram; 0 leaves the default. sv[0] is that end. */
int privsep_chan_pair(int sv[2], size_t sndbuf);
/* Encodes m (header and arg, then m->body as a second part, never copied) and sends it with
 * m->nfds fds (fd: the caller keeps its own copy). flags: 0 or MSG_DONTWAIT. -EPIPE: the peer is
 * gone; -EAGAIN (MSG_DONTWAIT): the buffer is full; -EINVAL: m does not encode. */
int privsep_chan_send(int sock, const struct privsep_msg *m, int fd, int flags);
/* Receives one message into buf (cap bytes, at least PRIVSEP_MSG_MAX(body_max): m->arg and
 * m->body then point into it) and decodes it; its fd (if any) goes to *fd, owned by the caller
 * (-1 when none). flags: 0 or MSG_DONTWAIT. -ENOTCONN: the peer closed; -EAGAIN: nothing yet;
 * -EMFILE: a request that decodes but whose fd could not be received (we are out of fds): m is
 * filled (nfds 0), answer it; -EPROTO: a message that does not decode, was truncated or brought
 * a wrong number of fds (any fds it brought are closed). */
int privsep_chan_recv(int sock, uint8_t *buf, size_t cap, size_t body_max, int flags,
                      struct privsep_msg *m, int *fd);
