/* cgroup: a pure parser of /proc/PID/cgroup (v2 "0::" line and v1 lines) that finds the runtime
 * and container id. No I/O. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define CGROUP_INPUT_MAX (64 * 1024) /* longest /proc/PID/cgroup text accepted */
#define CGROUP_PATH_MAX 4096          /* longest cgroup path kept */
#define CGROUP_ID_MAX 128             /* longest container id kept */
#define CGROUP_LINES_MAX 64           /* most lines accepted */

enum cgroup_runtime {
	CGROUP_RT_NONE = 0,    /* path recognises no runtime: a host process, or a container only
				  the hook registered (matched by path elsewhere) */
	CGROUP_RT_DOCKER,      /* /docker/<64hex>, docker-<64hex>.scope */
	CGROUP_RT_PODMAN,      /* libpod-<64hex>[.scope], /libpod_parent/libpod-<64hex> */
	CGROUP_RT_CONTAINERD,  /* cri-containerd-<id>.scope */
	CGROUP_RT_KUBERNETES,  /* /kubepods/.../pod<uid>/<id> (cgroupfs driver) */
	CGROUP_RT_CRIO,        /* crio-<id>.scope */
	CGROUP_RT_NSPAWN,      /* /machine.slice/machine-<name>.scope */
};

struct cgroup_info {
	enum cgroup_runtime runtime;
	char path[CGROUP_PATH_MAX]; /* the chosen path: the 0:: line, or name=systemd when 0:: is
				       "/" (or when there is no 0:: line); "/" for the root */
	char id[CGROUP_ID_MAX];     /* container id when runtime != NONE, else "" */
	char pod_uid[64];           /* Kubernetes pod uid when known, else "" */
};

/* Parses the text of /proc/PID/cgroup (buf, len: need not be NUL-terminated).
 * 0 on success; -EINVAL malformed (no usable line, bad line); -E2BIG over a limit;
 * -ENOTUNIQ two different container ids found (in one path or across lines). */
int cgroup_parse(const char *buf, size_t len, struct cgroup_info *out);
/* The runtime's lowercase name ("docker", "podman", ..., "host" for NONE). Static string. */
const char *cgroup_runtime_name(enum cgroup_runtime rt);
/* Parses a runtime name as cgroup_runtime_name spells it; -EINVAL if unknown. */
int cgroup_runtime_from_name(const char *name, enum cgroup_runtime *rt);
/* True when path equals ancestor or lies below it ("/a/b" is within "/a", "/ab" is not). */
bool cgroup_path_within(const char *path, const char *ancestor);
