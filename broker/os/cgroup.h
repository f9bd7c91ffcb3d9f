/* cgroup: a pure parser of /proc/PID/cgroup (v2 "0::" line and v1 lines) that finds the runtime
 * and container id. No I/O.
 *
 * Which path: the "0::" line unless it is "/" or absent; then the name=systemd line unless it is
 * "/" or absent; then the first other v1 line whose path is recognised as a container (crun run
 * through the hybrid-layout wrapper leaves "0::/"); else "/". An unrecognised v1 path is never
 * chosen: on a hybrid host a plain process's memory line often sits in some unrelated cgroup.
 * Runtime and id come from the chosen path alone; every line is still read, and two different
 * container ids anywhere (on one path, i.e. nesting such as docker in docker, or across lines)
 * are refused with -ENOTUNIQ.
 * Recognised (ids are 64 lowercase hex digits except nspawn's, innermost segment wins):
 *   docker      /docker/<id>, docker-<id>.scope
 *   podman      libpod-<id>[.scope][/...] (libpod-conmon-<id>.scope is conmon, a host process:
 *               not recognised)
 *   containerd  cri-containerd-<id>.scope, slice:cri-containerd:<id>
 *   crio        crio-<id>.scope, slice:crio:<id> (crio-conmon-<id>.scope not recognised)
 *   kubernetes  any of the above below a kubepods* segment, and /kubepods[/qos]/pod<uid>/<id>;
 *               pod_uid from pod<uid> or kubepods-*-pod<uid>.slice (underscores back to dashes)
 *   nspawn      /machine.slice/machine-<name>.scope; id is the machine name with systemd's \xNN
 *               escapes undone ("machine-foo\x2dbar.scope" -> "foo-bar"), as machinectl shows it
 * Anything else is CGROUP_RT_NONE with the path kept byte for byte (matched by path elsewhere).
 * Malformed: a line without two ':' or with a non-decimal hierarchy id, an empty line (other than
 * the final newline), a path not starting with '/', a NUL byte, a repeated 0:: or name=systemd
 * line: -EINVAL. Over CGROUP_INPUT_MAX bytes, CGROUP_LINES_MAX lines, or a path of
 * CGROUP_PATH_MAX bytes or more: -E2BIG. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define CGROUP_INPUT_MAX (64 * 1024) /* longest /proc/PID/cgroup text accepted */
#define CGROUP_PATH_MAX 4096         /* longest cgroup path kept */
#define CGROUP_ID_MAX 128            /* longest container id kept */
#define CGROUP_LINES_MAX 64          /* most lines accepted */

enum cgroup_runtime {
	CGROUP_RT_NONE = 0,   /* path recognises no runtime: a host process, or a container only
	                         the hook registered (matched by path elsewhere) */
	CGROUP_RT_DOCKER,     /* /docker/<64hex>, docker-<64hex>.scope */
	CGROUP_RT_PODMAN,     /* libpod-<64hex>[.scope], /libpod_parent/libpod-<64hex> */
	CGROUP_RT_CONTAINERD, /* cri-containerd-<id>.scope */
	CGROUP_RT_KUBERNETES, /* /kubepods/.../pod<uid>/<id> (cgroupfs driver) */
	CGROUP_RT_CRIO,       /* crio-<id>.scope */
	CGROUP_RT_NSPAWN,     /* /machine.slice/machine-<name>.scope */
};

struct cgroup_info {
	enum cgroup_runtime runtime;
	char path[CGROUP_PATH_MAX]; /* the chosen path (see above); "/" for the root */
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
