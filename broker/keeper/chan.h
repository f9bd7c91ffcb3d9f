/* keeper/chan: one keeper message (keeper/msg.h) per SOCK_SEQPACKET datagram, with its fds beside
 * it (SCM_RIGHTS). Received fds are close-on-exec. Functions return 0 or a negative errno. */
#pragma once
#include <stddef.h>

#include "broker/keeper/msg.h"

/* A connected pair (AF_UNIX, SOCK_SEQPACKET, close-on-exec): sv[0] for the keeper, sv[1] for the
 * worker. */
int keeper_chan_pair(int sv[2]);
/* Encodes m and sends it with m->nfds fds (the caller keeps its own copies). -EPIPE: the peer is
 * gone; -EINVAL: m does not encode. Blocks while the socket's buffer is full. */
int keeper_chan_send(int sock, const struct keeper_msg *m, const int *fds);
/* Receives one message into buf (KEEPER_MSG_MAX bytes, which m->blob then points into) and
 * decodes it; its fds (at most KEEPER_FDS_MAX) go to fds, owned by the caller. -ENOTCONN: the peer
 * closed; -EAGAIN: nothing (non-blocking socket); -EPROTO: a message that does not decode, was
 * truncated or brought too many fds (any fds it brought are closed). */
int keeper_chan_recv(int sock, uint8_t *buf, struct keeper_msg *m, int *fds);
