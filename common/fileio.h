/* fileio: small file helpers shared by the daemon's modules. */
#pragma once
#include <stddef.h>

/* Reads fd until end of file or until cap bytes are in buf (EINTR retried): 0 and *len, or
 * -errno. A caller that must know whether more was there reads with cap one above its limit. */
int fileio_read_upto(int fd, void *buf, size_t cap, size_t *len);
