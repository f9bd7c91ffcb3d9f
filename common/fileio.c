#include "common/fileio.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

int fileio_read_upto(int fd, void *buf, size_t cap, size_t *len)
{
	uint8_t *p = buf;
	size_t got = 0;
	while (got < cap) {
		ssize_t n = read(fd, p + got, cap - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*len = got;
	return 0;
}
