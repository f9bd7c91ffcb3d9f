/* keeper/link: the worker's side of the keeper channel (see keeper.h). Used by the daemon's top
 * level only: it hands its listening sockets and each container's FUSE connection to the keeper,
 * and at start takes back what a dead predecessor left. Functions return 0 or a negative errno. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker/keeper/msg.h"

typedef struct keeper_link keeper_link;

/* Opens the link named by KEEPER_ENV_FD (and unsets it, so children do not inherit it). *out is
 * NULL (and 0 returned) when the process was not started by a keeper. -EBADF: the variable names
 * no usable socket. */
int keeper_link_open(keeper_link **out);
/* Asks the keeper for everything it holds (what a dead predecessor handed it) and keeps it until
 * taken. Bounded by KEEPER_HELD_MAX entries and a 5 s wait. -EPROTO: a bad answer. */
int keeper_link_fetch(keeper_link *kl);
/* Takes a fetched entry (kind, id): its fds (up to KEEPER_FDS_MAX, owned by the caller now) into
 * fds, their count into *nfds, and its blob (at most KEEPER_BLOB_MAX bytes) into blob, its length
 * into *blob_len (blob may be NULL when not wanted). -ENOENT if there is none. */
int keeper_link_take(keeper_link *kl, uint8_t kind, const char *id, int *fds, unsigned *nfds,
                     uint8_t *blob, size_t *blob_len);
/* The ids of fetched entries of kind not taken yet, one call of fn each (for a caller that
 * decides what to do with leftovers); fn must not call back into kl. */
void keeper_link_each(keeper_link *kl, uint8_t kind, void (*fn)(void *ud, const char *id),
                      void *ud);
/* Closes every fetched entry not taken and tells the keeper to drop it. Returns how many. */
size_t keeper_link_drop_untaken(keeper_link *kl);
/* Hands a dup of fds (1..KEEPER_FDS_MAX) to the keeper under (kind, id), replacing what it held
 * there; blob (may be NULL with len 0) travels with it. */
int keeper_link_hold(keeper_link *kl, uint8_t kind, const char *id, const int *fds, unsigned nfds,
                     const void *blob, size_t blob_len);
/* Tells the keeper to close what it holds under (kind, id). */
int keeper_link_drop(keeper_link *kl, uint8_t kind, const char *id);
/* Tells the keeper this worker serves, from thread tid (gettid(); the keeper then counts the
 * worker dead as soon as that thread ends, even if another thread of it lingers). */
int keeper_link_ready(keeper_link *kl, pid_t tid);
/* Asks the keeper for an upgrade; 0 when it accepted (it will then ask this worker to hand off
 * with SIGUSR1), -EBUSY when one is already under way. */
int keeper_link_upgrade(keeper_link *kl);
/* Workers the keeper started before this one (from KEEPER_ENV_RESTARTS; 0 without a keeper). */
unsigned keeper_link_restarts(const keeper_link *kl);
/* Closes the link and every fetched entry not taken (without telling the keeper). NULL: no-op. */
void keeper_link_free(keeper_link *kl);
