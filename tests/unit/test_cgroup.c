/* Tests of broker/cgroup: a table of real-shaped /proc/PID/cgroup texts (docker, podman,
 * containerd, Kubernetes, CRI-O, nspawn, runc and crun on this project's hybrid hosts), malformed
 * input and the limits, then the small helpers. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/os/cgroup.h"
#include "broker/os/ident.h"
#include "tests/unit/runner.h"

#define H1 "4e1f5c8b2d3a6f7e9c0b1a2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"
#define H2 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define UID "0a1b2c3d-1111-2222-3333-444455556666"
#define UIDU "0a1b2c3d_1111_2222_3333_444455556666"

/* The v1 controller lines of this machine's hybrid layout, all at path P. */
#define V1(P)                                                                                      \
	"8:pids:" P "\n7:blkio:" P "\n6:freezer:" P "\n5:devices:" P "\n4:memory:" P               \
	"\n3:cpuset:" P "\n2:cpuacct:" P "\n1:cpu:" P "\n"

struct cg_case {
	const char *what;
	const char *in;
	int rc;
	enum cgroup_runtime rt;
	const char *id;
	const char *path;
	const char *pod;
};

#define ERR(what, in, rc)                                                                          \
	{                                                                                          \
		what, in, rc, CGROUP_RT_NONE, "", "", ""                                           \
	}

static const struct cg_case cases[] = {
    /* --- cgroup v2 only --- */
    {"v2 root", "0::/\n", 0, CGROUP_RT_NONE, "", "/", ""},
    {"v2 host user slice", "0::/user.slice/user-0.slice/session-1.scope\n", 0, CGROUP_RT_NONE, "",
     "/user.slice/user-0.slice/session-1.scope", ""},
    {"v2 no final newline", "0::/system.slice/docker-" H1 ".scope", 0, CGROUP_RT_DOCKER, H1,
     "/system.slice/docker-" H1 ".scope", ""},
    {"v2 docker cgroupfs", "0::/docker/" H1 "\n", 0, CGROUP_RT_DOCKER, H1, "/docker/" H1, ""},
    {"v2 docker systemd", "0::/system.slice/docker-" H1 ".scope\n", 0, CGROUP_RT_DOCKER, H1,
     "/system.slice/docker-" H1 ".scope", ""},
    {"v2 docker rootless", "0::/user.slice/user-1000.slice/user@1000.service/docker-" H1 ".scope\n",
     0, CGROUP_RT_DOCKER, H1, "/user.slice/user-1000.slice/user@1000.service/docker-" H1 ".scope",
     ""},
    {"v2 podman cgroupfs", "0::/libpod_parent/libpod-" H1 "\n", 0, CGROUP_RT_PODMAN, H1,
     "/libpod_parent/libpod-" H1, ""},
    {"v2 podman systemd", "0::/machine.slice/libpod-" H1 ".scope\n", 0, CGROUP_RT_PODMAN, H1,
     "/machine.slice/libpod-" H1 ".scope", ""},
    {"v2 podman nested container cgroup", "0::/machine.slice/libpod-" H1 ".scope/container\n", 0,
     CGROUP_RT_PODMAN, H1, "/machine.slice/libpod-" H1 ".scope/container", ""},
    {"v2 podman conmon is no container", "0::/machine.slice/libpod-conmon-" H1 ".scope\n", 0,
     CGROUP_RT_NONE, "", "/machine.slice/libpod-conmon-" H1 ".scope", ""},
    {"v2 podman pod", "0::/machine.slice/machine-libpod_pod_" H2 ".slice/libpod-" H1 ".scope\n", 0,
     CGROUP_RT_PODMAN, H1, "/machine.slice/machine-libpod_pod_" H2 ".slice/libpod-" H1 ".scope",
     ""},
    {"v2 containerd alone", "0::/system.slice/cri-containerd-" H1 ".scope\n", 0,
     CGROUP_RT_CONTAINERD, H1, "/system.slice/cri-containerd-" H1 ".scope", ""},
    {"v2 k8s containerd colon form",
     "0::/system.slice/containerd.service/kubepods-burstable-pod" UIDU ".slice:cri-containerd:" H1
     "\n",
     0, CGROUP_RT_KUBERNETES, H1,
     "/system.slice/containerd.service/kubepods-burstable-pod" UIDU ".slice:cri-containerd:" H1,
     UID},
    {"v2 k8s containerd systemd driver",
     "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UIDU
     ".slice/cri-containerd-" H1 ".scope\n",
     0, CGROUP_RT_KUBERNETES, H1,
     "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UIDU
     ".slice/cri-containerd-" H1 ".scope",
     UID},
    {"v2 k8s guaranteed systemd driver",
     "0::/kubepods.slice/kubepods-pod" UIDU ".slice/cri-containerd-" H1 ".scope\n", 0,
     CGROUP_RT_KUBERNETES, H1,
     "/kubepods.slice/kubepods-pod" UIDU ".slice/cri-containerd-" H1 ".scope", UID},
    {"v2 k8s cgroupfs burstable", "0::/kubepods/burstable/pod" UID "/" H1 "\n", 0,
     CGROUP_RT_KUBERNETES, H1, "/kubepods/burstable/pod" UID "/" H1, UID},
    {"v2 k8s cgroupfs guaranteed", "0::/kubepods/pod" UID "/" H1 "\n", 0, CGROUP_RT_KUBERNETES, H1,
     "/kubepods/pod" UID "/" H1, UID},
    {"v2 k8s pod cgroup itself is no container", "0::/kubepods/burstable/pod" UID "\n", 0,
     CGROUP_RT_NONE, "", "/kubepods/burstable/pod" UID, ""},
    {"v2 k8s crio systemd",
     "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UIDU ".slice/crio-" H1
     ".scope\n",
     0, CGROUP_RT_KUBERNETES, H1,
     "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UIDU ".slice/crio-" H1
     ".scope",
     UID},
    {"v2 crio alone", "0::/machine.slice/crio-" H1 ".scope\n", 0, CGROUP_RT_CRIO, H1,
     "/machine.slice/crio-" H1 ".scope", ""},
    {"v2 crio conmon", "0::/kubepods.slice/kubepods-pod" UIDU ".slice/crio-conmon-" H1 ".scope\n",
     0, CGROUP_RT_NONE, "", "/kubepods.slice/kubepods-pod" UIDU ".slice/crio-conmon-" H1 ".scope",
     ""},
    {"v2 nspawn", "0::/machine.slice/machine-web.scope\n", 0, CGROUP_RT_NSPAWN, "web",
     "/machine.slice/machine-web.scope", ""},
    {"v2 nspawn escaped payload", "0::/machine.slice/machine-foo\\x2dbar.scope/payload\n", 0,
     CGROUP_RT_NSPAWN, "foo-bar", "/machine.slice/machine-foo\\x2dbar.scope/payload", ""},
    {"v2 nspawn bad escape", "0::/machine.slice/machine-foo\\x2.scope\n", 0, CGROUP_RT_NONE, "",
     "/machine.slice/machine-foo\\x2.scope", ""},
    {"v2 machine- outside machine.slice", "0::/system.slice/machine-web.scope\n", 0, CGROUP_RT_NONE,
     "", "/system.slice/machine-web.scope", ""},
    {"v2 plain runc", "0::/mycontainer\n", 0, CGROUP_RT_NONE, "", "/mycontainer", ""},
    {"v2 bare hex not under docker", "0::/" H1 "\n", 0, CGROUP_RT_NONE, "", "/" H1, ""},
    {"v2 short id not taken", "0::/system.slice/docker-abc123.scope\n", 0, CGROUP_RT_NONE, "",
     "/system.slice/docker-abc123.scope", ""},
    {"v2 uppercase hex not taken",
     "0::/docker/4E1F5C8B2D3A6F7E9C0B1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E6F7A8B9C0D1E2F\n", 0,
     CGROUP_RT_NONE, "", "/docker/4E1F5C8B2D3A6F7E9C0B1A2D3E4F5A6B7C8D9E0F1A2B3C4D5E6F7A8B9C0D1E2F",
     ""},
    {"v2 path kept byte for byte", "0::/a b/c\\n/\n", 0, CGROUP_RT_NONE, "", "/a b/c\\n/", ""},
    {"v2 trailing slash kept", "0::/docker/" H1 "/\n", 0, CGROUP_RT_DOCKER, H1, "/docker/" H1 "/",
     ""},

    /* --- hybrid files as on this project's machines --- */
    {"hybrid host (this machine)", "9:name=systemd:/\n" V1("/") "0::/\n", 0, CGROUP_RT_NONE, "",
     "/", ""},
    {"hybrid host, memory elsewhere",
     "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/493cde93abcf804da8ad442642944d34\n0::/\n",
     0, CGROUP_RT_NONE, "", "/", ""},
    {"hybrid runc: 0::/ID, memory nested under the caller",
     "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/493cde93abcf804da8ad442642944d34/c1\n"
     "1:cpu:/\n0::/c1\n",
     0, CGROUP_RT_NONE, "", "/c1", ""},
    {"hybrid crun wrapper: v1 /ID, 0::/", "9:name=systemd:/c1\n" V1("/c1") "0::/\n", 0,
     CGROUP_RT_NONE, "", "/c1", ""},
    {"hybrid crun wrapper, no name=systemd, unrecognised", V1("/c1") "0::/\n", 0, CGROUP_RT_NONE,
     "", "/", ""},
    {"hybrid crun wrapper, 64-hex docker id on v1 only", V1("/docker/" H1) "0::/\n", 0,
     CGROUP_RT_DOCKER, H1, "/docker/" H1, ""},
    {"hybrid podman+runc cgroupfs",
     "9:name=systemd:/libpod_parent/libpod-" H1 "\n" V1("/libpod_parent/libpod-" H1) "0::/\n", 0,
     CGROUP_RT_PODMAN, H1, "/libpod_parent/libpod-" H1, ""},
    {"hybrid podman v2 and v1 agree",
     "9:name=systemd:/\n" V1("/libpod_parent/libpod-" H1) "0::/libpod_parent/libpod-" H1 "\n", 0,
     CGROUP_RT_PODMAN, H1, "/libpod_parent/libpod-" H1, ""},
    {"hybrid v1 name=systemd only docker", "9:name=systemd:/docker/" H1 "\n" V1("/") "0::/\n", 0,
     CGROUP_RT_DOCKER, H1, "/docker/" H1, ""},
    {"hybrid v2 preferred over name=systemd", "9:name=systemd:/user.slice\n0::/docker/" H1 "\n", 0,
     CGROUP_RT_DOCKER, H1, "/docker/" H1, ""},
    {"hybrid systemd docker (all lines the scope)",
     "12:name=systemd:/system.slice/docker-" H1 ".scope\n4:memory:/system.slice/docker-" H1
     ".scope\n0::/system.slice/docker-" H1 ".scope\n",
     0, CGROUP_RT_DOCKER, H1, "/system.slice/docker-" H1 ".scope", ""},
    {"v1 only, no v2 line", "9:name=systemd:/docker/" H1 "\n4:memory:/docker/" H1 "\n", 0,
     CGROUP_RT_DOCKER, H1, "/docker/" H1, ""},
    {"v1 name=systemd among other names", "1:name=elogind,name=systemd:/docker/" H1 "\n", 0,
     CGROUP_RT_DOCKER, H1, "/docker/" H1, ""},
    {"v2 unrecognised wins over v1 docker", "4:memory:/docker/" H1 "\n0::/c1\n", 0, CGROUP_RT_NONE,
     "", "/c1", ""},

    /* --- conflicting ids --- */
    ERR("nested docker in docker", "0::/docker/" H1 "/docker/" H2 "\n", -ENOTUNIQ),
    ERR("docker in nspawn", "0::/machine.slice/machine-web.scope/payload/docker/" H1 "\n",
        -ENOTUNIQ),
    ERR("v2 and v1 disagree", "4:memory:/docker/" H2 "\n0::/docker/" H1 "\n", -ENOTUNIQ),
    ERR("two v1 lines disagree",
        "9:name=systemd:/\n5:devices:/docker/" H1 "\n4:memory:/docker/" H2 "\n0::/\n", -ENOTUNIQ),
    {"same id twice is fine", "0::/docker/" H1 "/docker/" H1 "\n", 0, CGROUP_RT_DOCKER, H1,
     "/docker/" H1 "/docker/" H1, ""},

    /* --- malformed --- */
    ERR("empty input", "", -EINVAL),
    ERR("only a newline", "\n", -EINVAL),
    ERR("blank line inside", "9:name=systemd:/\n\n0::/\n", -EINVAL),
    ERR("no colon", "garbage\n", -EINVAL),
    ERR("one colon", "0:/docker\n", -EINVAL),
    ERR("empty path", "0::\n", -EINVAL),
    ERR("relative path", "0::docker/" H1 "\n", -EINVAL),
    ERR("non-decimal hierarchy", "x::/\n", -EINVAL),
    ERR("empty hierarchy", ":memory:/\n", -EINVAL),
    ERR("second 0:: line", "0::/a\n0::/b\n", -EINVAL),
    ERR("second name=systemd line", "1:name=systemd:/a\n2:name=systemd:/a\n", -EINVAL),
    ERR("CRLF is not a path", "0::\r\n", -EINVAL),
};

START_TEST(test_table)
{
	const struct cg_case *c = &cases[_i];
	/* Into an exactly sized heap copy, no NUL: ASan catches a read past len. */
	size_t len = strlen(c->in);
	char *buf = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(buf);
	memcpy(buf, c->in, len);
	struct cgroup_info info;
	memset(&info, 0x5a, sizeof(info));
	int r = cgroup_parse(buf, len, &info);
	free(buf);
	ck_assert_msg(r == c->rc, "%s: rc %d, want %d", c->what, r, c->rc);
	if (c->rc < 0)
		return;
	ck_assert_msg(info.runtime == c->rt, "%s: runtime %s, want %s", c->what,
	              cgroup_runtime_name(info.runtime), cgroup_runtime_name(c->rt));
	ck_assert_msg(strcmp(info.id, c->id) == 0, "%s: id '%s'", c->what, info.id);
	ck_assert_msg(strcmp(info.path, c->path) == 0, "%s: path '%s'", c->what, info.path);
	ck_assert_msg(strcmp(info.pod_uid, c->pod) == 0, "%s: pod '%s'", c->what, info.pod_uid);
}
END_TEST

/* The parser reads exactly len bytes: what follows (here a different line) is not seen. */
START_TEST(test_len_bounds)
{
	const char *s = "0::/docker/" H1 "\n0::/other\n";
	struct cgroup_info info;
	ck_assert_int_eq(cgroup_parse(s, strlen("0::/docker/" H1 "\n"), &info), 0);
	ck_assert_str_eq(info.id, H1);
	ck_assert_int_eq(cgroup_parse(s, strlen("0::/docker/" H1), &info), 0);
	ck_assert_str_eq(info.path, "/docker/" H1);
	ck_assert_int_eq(cgroup_parse(s, 3, &info), -EINVAL); /* "0::": empty path */
	ck_assert_int_eq(cgroup_parse(s, 4, &info), 0);
	ck_assert_str_eq(info.path, "/");
	/* An embedded NUL counted by len. */
	ck_assert_int_eq(cgroup_parse("0::/a\0b\n", 8, &info), -EINVAL);
	ck_assert_int_eq(cgroup_parse(NULL, 0, &info), -EINVAL);
	ck_assert_int_eq(cgroup_parse(NULL, 5, &info), -EINVAL);
	ck_assert_int_eq(cgroup_parse("0::/\n", 5, NULL), -EINVAL);
}
END_TEST

START_TEST(test_limits)
{
	struct cgroup_info info;
	size_t big = CGROUP_INPUT_MAX + 1;
	char *buf = malloc(big);
	ck_assert_ptr_nonnull(buf);
	/* Input size */
	memset(buf, '/', big);
	memcpy(buf, "0::", 3);
	ck_assert_int_eq(cgroup_parse(buf, big, &info), -E2BIG);
	/* Path length: CGROUP_PATH_MAX - 1 bytes fit, CGROUP_PATH_MAX do not */
	memcpy(buf, "0::", 3);
	memset(buf + 3, 'a', CGROUP_PATH_MAX);
	buf[3] = '/';
	ck_assert_int_eq(cgroup_parse(buf, 3 + CGROUP_PATH_MAX - 1, &info), 0);
	ck_assert_uint_eq(strlen(info.path), CGROUP_PATH_MAX - 1);
	ck_assert_int_eq(cgroup_parse(buf, 3 + CGROUP_PATH_MAX, &info), -E2BIG);
	/* Line count: CGROUP_LINES_MAX fit, one more does not */
	size_t n = 0;
	for (int i = 0; i < CGROUP_LINES_MAX; i++)
		n += (size_t)sprintf(buf + n, "%d:c%d:/\n", i + 1, i);
	ck_assert_int_eq(cgroup_parse(buf, n, &info), 0);
	n += (size_t)sprintf(buf + n, "0::/\n");
	ck_assert_int_eq(cgroup_parse(buf, n, &info), -E2BIG);
	/* A file of exactly CGROUP_INPUT_MAX bytes (16 lines of 4096) is accepted */
	const size_t line = CGROUP_INPUT_MAX / 16;
	for (size_t i = 0; i < 16; i++) {
		char *l = buf + i * line;
		int p = sprintf(l, "%zu:c%zu:/", i + 1, i);
		memset(l + p, 'x', line - (size_t)p - 1);
		l[line - 1] = '\n';
	}
	ck_assert_int_eq(cgroup_parse(buf, CGROUP_INPUT_MAX, &info), 0);
	ck_assert_str_eq(info.path, "/");
	buf[CGROUP_INPUT_MAX] = 'x';
	ck_assert_int_eq(cgroup_parse(buf, CGROUP_INPUT_MAX + 1, &info), -E2BIG);
	free(buf);
}
END_TEST

/* This machine's own file, whatever it holds, parses. */
START_TEST(test_self)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	if (!f)
		return;
	char buf[CGROUP_INPUT_MAX];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	struct cgroup_info info;
	ck_assert_int_eq(cgroup_parse(buf, n, &info), 0);
	ck_assert_int_eq(info.path[0], '/');
}
END_TEST

START_TEST(test_names)
{
	static const enum cgroup_runtime all[] = {
	    CGROUP_RT_NONE,       CGROUP_RT_DOCKER, CGROUP_RT_PODMAN, CGROUP_RT_CONTAINERD,
	    CGROUP_RT_KUBERNETES, CGROUP_RT_CRIO,   CGROUP_RT_NSPAWN};
	static const char *const names[] = {"host",       "docker", "podman", "containerd",
	                                    "kubernetes", "crio",   "nspawn"};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		ck_assert_str_eq(cgroup_runtime_name(all[i]), names[i]);
		enum cgroup_runtime rt = CGROUP_RT_NONE;
		ck_assert_int_eq(cgroup_runtime_from_name(names[i], &rt), 0);
		ck_assert_int_eq(rt, all[i]);
	}
	enum cgroup_runtime rt;
	ck_assert_int_eq(cgroup_runtime_from_name("Docker", &rt), -EINVAL);
	ck_assert_int_eq(cgroup_runtime_from_name("", &rt), -EINVAL);
	ck_assert_int_eq(cgroup_runtime_from_name("runc", &rt), -EINVAL);
	ck_assert_int_eq(cgroup_runtime_from_name(NULL, &rt), -EINVAL);
	ck_assert_str_eq(cgroup_runtime_name((enum cgroup_runtime)99), "host");
}
END_TEST

START_TEST(test_within)
{
	ck_assert(cgroup_path_within("/a/b", "/a"));
	ck_assert(cgroup_path_within("/a", "/a"));
	ck_assert(cgroup_path_within("/a/b/c", "/a/b"));
	ck_assert(cgroup_path_within("/a/b", "/a/"));
	ck_assert(cgroup_path_within("/anything", "/"));
	ck_assert(cgroup_path_within("/", "/"));
	ck_assert(!cgroup_path_within("/ab", "/a"));
	ck_assert(!cgroup_path_within("/a", "/a/b"));
	ck_assert(!cgroup_path_within("/", "/a"));
	ck_assert(!cgroup_path_within("/b/a", "/a"));
	ck_assert(!cgroup_path_within("a/b", "a"));
	ck_assert(!cgroup_path_within(NULL, "/"));
	ck_assert(!cgroup_path_within("/a", NULL));
}
END_TEST

/* ident_parse_start: field 22 of /proc/PID/stat, after the last ')' (comm may hold anything). */
START_TEST(test_stat_start)
{
	static const char plain[] = "1234 (sh) S 1 1234 1234 0 -1 4194560 300 0 0 0 0 0 0 0 20 0 1 "
	                            "0 98765 2658304 180 1 2 3\n";
	static const char paren[] =
	    "42 (a) b) 1 2 (x) R 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0";
	uint64_t v = 0;
	ck_assert_int_eq(ident_parse_start(plain, strlen(plain), &v), 0);
	ck_assert_uint_eq(v, 98765);
	ck_assert_int_eq(ident_parse_start(paren, strlen(paren), &v), 0);
	ck_assert_uint_eq(v, 5);
	static const char *bad[] = {
	    "",
	    "1 (sh",
	    "7 (x) S 1 2 3\n",
	    "7 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -5 1",
	    "7 (x)  S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 5 1",
	    "7 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 99999999999999999999 1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 777;
		ck_assert_msg(ident_parse_start(bad[i], strlen(bad[i]), &v) == -EINVAL, "%s",
		              bad[i]);
		ck_assert_uint_eq(v, 777);
	}
	/* the running process's own, read through /proc */
	ck_assert_int_eq(ident_start_time(getpid(), &v), 0);
	ck_assert_uint_gt(v, 0);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("cgroup");
	TCase *tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, test_len_bounds);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_self);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_within);
	tcase_add_test(tc, test_stat_start);
	suite_add_tcase(s, tc);
	return s;
}
