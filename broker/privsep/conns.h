/* privsep/conns: the daemon process's table of the server's open client connections, each named
 * by a handle the server presents with its requests instead of the connection itself
 * (docs/DESIGN.md, "The server process": identity per connection). Pure: no I/O; the values are
 * the caller's (the table neither frees nor reads them).
 *
 * A handle is (generation << 32 | slot): the generation is a counter of the table's additions
 * (never 0, kept across privsep_conns_drain), so a handle that was removed never names a later
 * entry of the same slot, and a made-up one names nothing unless it is one the table gave out
 * and still holds. Functions return 0 or a negative errno unless said otherwise. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* The most entries a table holds (privsep_conns_new's max). */
#define PRIVSEP_CONNS_MAX (1u << 20)

typedef struct privsep_conns privsep_conns;

/* A table for at most max (1..PRIVSEP_CONNS_MAX) entries; -EINVAL, -ENOMEM. Freed with
 * privsep_conns_free (which leaves the values alone: drain it first). */
int privsep_conns_new(privsep_conns **out, unsigned max);
void privsep_conns_free(privsep_conns *t);
/* Adds v (not NULL) and gives its handle (never 0); -ENOSPC when the table is full. */
int privsep_conns_add(privsep_conns *t, void *v, uint64_t *handle);
/* The value handle names, or NULL (never given out, removed, or another generation's). */
void *privsep_conns_get(const privsep_conns *t, uint64_t handle);
/* Removes the entry handle names and returns its value, or NULL as privsep_conns_get. */
void *privsep_conns_remove(privsep_conns *t, uint64_t handle);
/* Removes every entry, calling fn(value, ud) for each (to free them). */
void privsep_conns_drain(privsep_conns *t, void (*fn)(void *v, void *ud), void *ud);
/* Entries held now. */
unsigned privsep_conns_count(const privsep_conns *t);
