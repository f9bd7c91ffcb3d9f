#include "broker/engine/fault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/engine/fault_test.h"

int (*engine_fault_hook)(enum engine_fault_point p, void *ud);
void *engine_fault_ud;

int engine_fault(enum engine_fault_point p)
{
	return engine_fault_hook ? engine_fault_hook(p, engine_fault_ud) : 0;
}

/* The file that arms each point in a fault directory. */
static const char *const fault_files[] = {
    [ENGINE_FAULT_VIEW_INPUTS] = "view_inputs",
    [ENGINE_FAULT_AUDIT_RECORD] = "audit_record",
    [ENGINE_FAULT_UNMOUNT] = "unmount",
    [ENGINE_FAULT_REGISTRY_WRITE] = "registry_write",
};
_Static_assert(sizeof(fault_files) / sizeof(fault_files[0]) == ENGINE_FAULT_POINTS,
               "a fault point without its file");

static int fault_dir_fd = -1;

static int fault_from_dir(enum engine_fault_point p, void *ud)
{
	struct stat st;
	if ((unsigned)p >= sizeof(fault_files) / sizeof(fault_files[0]))
		return 0;
	if (fstatat(fault_dir_fd, fault_files[p], &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return S_ISREG(st.st_mode) && st.st_uid == geteuid() ? -EIO : 0;
}

int engine_fault_use_dir(const char *dir)
{
	if (!dir || dir[0] != '/')
		return -EINVAL;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077)) {
		close(fd);
		return -EPERM;
	}
	if (fault_dir_fd >= 0)
		close(fault_dir_fd);
	fault_dir_fd = fd;
	engine_fault_ud = NULL;
	engine_fault_hook = fault_from_dir;
	return 0;
}
