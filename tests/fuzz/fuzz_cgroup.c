/* Fuzzes cgroup_parse with /proc/PID/cgroup-like text; checks the result's invariants. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/os/cgroup.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cgroup_info info; /* 4 KiB+: off the stack */
	int r = cgroup_parse((const char *)data, size, &info);
	if (r != 0 && r != -EINVAL && r != -E2BIG && r != -ENOTUNIQ)
		abort();
	if (r < 0)
		return 0;
	size_t pl = strnlen(info.path, sizeof(info.path));
	size_t il = strnlen(info.id, sizeof(info.id));
	if (pl == 0 || pl == sizeof(info.path) || info.path[0] != '/')
		abort();
	if (il == sizeof(info.id) ||
	    strnlen(info.pod_uid, sizeof(info.pod_uid)) == sizeof(info.pod_uid))
		abort();
	/* An id exactly when a runtime was recognised; a runtime name that parses back. */
	if ((info.runtime == CGROUP_RT_NONE) != (il == 0))
		abort();
	enum cgroup_runtime rt;
	if (cgroup_runtime_from_name(cgroup_runtime_name(info.runtime), &rt) != 0 ||
	    rt != info.runtime)
		abort();
	/* The path is a line's path byte for byte (or the root). */
	if (pl > 1 && !memmem(data, size, info.path, pl))
		abort();
	if (!cgroup_path_within(info.path, info.path) || !cgroup_path_within(info.path, "/"))
		abort();
	return 0;
}
