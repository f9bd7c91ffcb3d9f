#include "broker/os/reserve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/cleanup.h"

static int reserve_path(const char *dir, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", dir, RESERVE_FILE);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int reserve_make(const char *dir, uint64_t bytes)
{
	char p[PATH_MAX];
	int r = reserve_path(dir, p, sizeof(p));
	if (r < 0)
		return r;
	if (bytes == 0 || bytes > (uint64_t)INT64_MAX)
		return -EINVAL;
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EEXIST;
	if (st.st_blocks * 512 >= (int64_t)bytes)
		return 0;
	r = posix_fallocate(fd, 0, (off_t)bytes);
	if (r != 0) {
		if (unlink(p) < 0)
			return -errno;
		return -r;
	}
	return 0;
}

int reserve_release(const char *dir)
{
	char p[PATH_MAX];
	int r = reserve_path(dir, p, sizeof(p));
	if (r < 0)
		return r;
	return unlink(p) < 0 ? -errno : 0;
}

int reserve_avail(const char *dir, uint64_t *bytes)
{
	struct statvfs sv;
	if (statvfs(dir, &sv) < 0)
		return -errno;
	*bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}
