/* reserve: a preallocated file in the state dir ("reserve", mode 0600) that holds disk space for
 * key operations. When the disk fills up (the audit batcher hits ENOSPC), the daemon deletes it:
 * the space it held lets key rotations, puts and their audit records commit while FUSE opens
 * stay refused. The audit batcher waits until the disk has room for the reserve again, remakes
 * it, and only then writes again (so opens cannot eat the reserve). Functions return 0 or
 * -errno. */
#pragma once
#include <stdint.h>

#define RESERVE_FILE "reserve"
#define RESERVE_DEFAULT_BYTES (2 * 1024 * 1024) /* --disk-reserve default */

/* Creates or extends DIR/reserve to bytes (fallocate: the blocks are really taken). -ENOSPC
 * when the disk lacks them (a partial file is removed). */
int reserve_make(const char *dir, uint64_t bytes);
/* Deletes DIR/reserve: 0, or -ENOENT when it was not there. */
int reserve_release(const char *dir);
/* Bytes an unprivileged writer can still allocate on DIR's filesystem. */
int reserve_avail(const char *dir, uint64_t *bytes);
