/* Tests of client/runc_edit (secretd-runc): runc's argv read as dockerd and containerd's shim
 * write it, and the config.json edit (hooks, Docker labels, refusals, idempotence). */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client/runc_edit.h"
#include "tests/unit/runner.h"

#define ID "4e1f5c8b2d3a6f7e9c0b1a2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"
#define HOOK "/usr/libexec/secretd/secretd-oci-hook"

static const struct runc_edit_opts opts = {.hook = HOOK, .socket = "/run/s.sock", .id = ID};

static int parse(int argc, char **argv, struct runc_args *a, const char **out)
{
	const char *why = NULL;
	int r = runc_args_parse(argc, argv, a, out, &why);
	if (r < 0)
		ck_assert_ptr_nonnull(why);
	return r;
}

START_TEST(test_args_shim_create)
{
	char *argv[] = {"secretd-runc", "--secretd-socket=/s.sock",
	                "--root",       "/run/runc/moby",
	                "--log",        "/b/log.json",
	                "--log-format", "json",
	                "create",       "--bundle",
	                "/b",           "--pid-file",
	                "/b/init.pid",  ID};
	const char *out[15];
	struct runc_args a;
	ck_assert_int_eq(parse(14, argv, &a, out), 0);
	ck_assert_str_eq(a.command, "create");
	ck_assert_str_eq(a.bundle, "/b");
	ck_assert_str_eq(a.id, ID);
	ck_assert_str_eq(a.log, "/b/log.json");
	ck_assert(a.log_json);
	ck_assert_str_eq(a.socket, "/s.sock");
	ck_assert_ptr_null(a.hook);
	ck_assert(runc_args_creates(&a));
	/* our option is gone, everything else is in order */
	ck_assert_int_eq(a.argc, 13);
	for (int i = 1; i < 13; i++)
		ck_assert_str_eq(out[i], argv[i + 1]);
	ck_assert_ptr_null(out[13]);
}
END_TEST

START_TEST(test_args_forms)
{
	char *argv[] = {"r",      "--log=/l", "--log-format=text", "--debug", "run",
	                "-b=/bx", "--detach", "--console-socket",  "/cs",     "myid"};
	const char *out[11];
	struct runc_args a;
	ck_assert_int_eq(parse(10, argv, &a, out), 0);
	ck_assert_str_eq(a.log, "/l");
	ck_assert(!a.log_json);
	ck_assert_str_eq(a.bundle, "/bx");
	ck_assert_str_eq(a.id, "myid"); /* not "/cs" */
	ck_assert_int_eq(a.argc, 10);

	char *st[] = {"r", "--root", "/x", "state", ID};
	ck_assert_int_eq(parse(5, st, &a, out), 0);
	ck_assert_str_eq(a.command, "state");
	ck_assert(!runc_args_creates(&a));
	ck_assert_ptr_null(a.bundle);

	char *nocmd[] = {"r", "--version"};
	ck_assert_int_eq(parse(2, nocmd, &a, out), 0);
	ck_assert_ptr_null(a.command);
}
END_TEST

START_TEST(test_args_bad)
{
	const char *out[8];
	struct runc_args a;
	char *unknown[] = {"r", "--secretd-nope=1", "state", "x"};
	ck_assert_int_eq(parse(4, unknown, &a, out), -EINVAL);
	char *empty[] = {"r", "--secretd-hook=", "state", "x"};
	ck_assert_int_eq(parse(4, empty, &a, out), -EINVAL);
	char *novalue[] = {"r", "--root"};
	ck_assert_int_eq(parse(2, novalue, &a, out), -EINVAL);
	char *nobundle[] = {"r", "create", "--bundle"};
	ck_assert_int_eq(parse(3, nobundle, &a, out), -EINVAL);
	char *longarg = malloc(RUNC_ARG_MAX + 2);
	ck_assert_ptr_nonnull(longarg);
	memset(longarg, 'a', RUNC_ARG_MAX + 1);
	longarg[RUNC_ARG_MAX + 1] = '\0';
	char *toolong[] = {"r", "state", longarg};
	ck_assert_int_eq(parse(3, toolong, &a, out), -E2BIG);
	free(longarg);
}
END_TEST

#define IMG_NONE "{\"config\":{\"Labels\":null}}"

/* Edits cfg (and docker, with image); returns the parsed result, or NULL when refused with *rc
 * set. */
static json_t *edit_img(const char *cfg, const char *docker, const char *image, int *rc)
{
	char *out = NULL;
	size_t len = 0;
	const char *why = NULL;
	struct runc_docker d = {.config = docker,
	                        .config_len = docker ? strlen(docker) : 0,
	                        .image = image,
	                        .image_len = image ? strlen(image) : 0};
	const struct runc_docker *dp = docker ? &d : NULL;
	*rc = runc_edit_config(cfg, strlen(cfg), dp, &opts, &out, &len, &why);
	if (*rc < 0) {
		ck_assert_ptr_nonnull(why);
		ck_assert_ptr_null(out);
		return NULL;
	}
	ck_assert_uint_eq(strlen(out), len);
	json_t *j = json_loadb(out, len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	/* a second edit changes nothing */
	char *out2 = NULL;
	size_t len2 = 0;
	ck_assert_int_eq(runc_edit_config(out, len, dp, &opts, &out2, &len2, &why), 0);
	ck_assert_str_eq(out, out2);
	free(out);
	free(out2);
	return j;
}

static json_t *edit(const char *cfg, const char *docker, int *rc)
{
	return edit_img(cfg, docker, docker ? IMG_NONE : NULL, rc);
}

START_TEST(test_edit_hooks)
{
	int rc;
	json_t *j = edit("{\"ociVersion\":\"1.0.2\",\"hooks\":{\"prestart\":[{\"path\":\"/x\"}]}}",
	                 NULL, &rc);
	ck_assert_int_eq(rc, 0);
	json_t *hooks = json_object_get(j, "hooks");
	ck_assert_uint_eq(json_array_size(json_object_get(hooks, "prestart")), 1);
	json_t *c = json_array_get(json_object_get(hooks, "createRuntime"), 0);
	json_t *p = json_array_get(json_object_get(hooks, "poststop"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(c, "path")), HOOK);
	ck_assert_int_eq(json_integer_value(json_object_get(c, "timeout")), RUNC_HOOK_TIMEOUT);
	json_t *args = json_object_get(c, "args");
	ck_assert_uint_eq(json_array_size(args), 4);
	ck_assert_str_eq(json_string_value(json_array_get(args, 2)), "/run/s.sock");
	ck_assert_str_eq(json_string_value(json_array_get(args, 3)), "createRuntime");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(p, "args"), 3)),
	                 "poststop");
	/* no annotations added when there are none to add */
	ck_assert_ptr_null(json_object_get(j, "annotations"));
	json_decref(j);

	/* a hook with our path already there (config-hooks.json merged by hand) is kept alone */
	j = edit("{\"hooks\":{\"createRuntime\":[{\"path\":\"" HOOK "\",\"args\":[\"h\"]}]}}", NULL,
	         &rc);
	ck_assert_int_eq(rc, 0);
	hooks = json_object_get(j, "hooks");
	ck_assert_uint_eq(json_array_size(json_object_get(hooks, "createRuntime")), 1);
	ck_assert_uint_eq(json_array_size(json_object_get(hooks, "poststop")), 1);
	json_decref(j);
}
END_TEST

START_TEST(test_edit_docker_labels)
{
	int rc;
	json_t *j = edit("{\"annotations\":{\"io.secretd.name\":\"from-annotation\"}}",
	                 "{\"ID\":\"" ID "\",\"Config\":{\"Labels\":{\"io.secretd.name\":\"web\","
	                 "\"io.secretd.label.team\":\"payments\",\"team\":\"other\"}}}",
	                 &rc);
	ck_assert_int_eq(rc, 0);
	json_t *ann = json_object_get(j, "annotations");
	ck_assert_str_eq(json_string_value(json_object_get(ann, "io.secretd.name")),
	                 "from-annotation");
	ck_assert_str_eq(json_string_value(json_object_get(ann, "io.secretd.label.team")),
	                 "payments");
	ck_assert_ptr_null(json_object_get(ann, "team"));
	json_decref(j);

	/* no labels, null labels: fine, nothing added */
	j = edit("{}", "{\"ID\":\"" ID "\",\"Config\":{\"Labels\":null}}", &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_ptr_null(json_object_get(j, "annotations"));
	json_decref(j);
}
END_TEST

START_TEST(test_edit_image_labels)
{
	int rc;
	const char *v2 = "{\"ID\":\"" ID "\",\"Config\":{\"Labels\":{\"io.secretd.name\":\"web\","
	                 "\"io.secretd.label.team\":\"payments\"}}}";
	/* the image set io.secretd.name=web: ignored; the team label differs: the container's */
	json_t *j = edit_img("{}", v2,
	                     "{\"config\":{\"Labels\":{\"io.secretd.name\":\"web\","
	                     "\"io.secretd.label.team\":\"ops\"}}}",
	                     &rc);
	ck_assert_int_eq(rc, 0);
	json_t *ann = json_object_get(j, "annotations");
	ck_assert_ptr_null(json_object_get(ann, "io.secretd.name"));
	ck_assert_str_eq(json_string_value(json_object_get(ann, "io.secretd.label.team")),
	                 "payments");
	json_decref(j);
	/* no image config: labels cannot be traced, refused; without labels it does not matter */
	ck_assert_ptr_null(edit_img("{}", v2, NULL, &rc));
	ck_assert_int_eq(rc, -ENODATA);
	j = edit_img("{}", "{\"ID\":\"" ID "\",\"Config\":{\"Labels\":{\"a\":\"b\"}}}", NULL, &rc);
	ck_assert_int_eq(rc, 0);
	json_decref(j);
	ck_assert_ptr_null(edit_img("{}", v2, "{\"config\":{\"Labels\":[]}}", &rc));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(edit_img("{}", v2, "nope", &rc));
	ck_assert_int_eq(rc, -EINVAL);
}
END_TEST

START_TEST(test_docker_image)
{
	char rel[256];
	const char *hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char v2[512];
	snprintf(v2, sizeof(v2), "{\"Image\":\"sha256:%s\",\"Driver\":\"overlay2\"}", hex);
	ck_assert_int_eq(runc_docker_image(v2, strlen(v2), rel, sizeof(rel)), 0);
	ck_assert_str_eq(rel, "image/overlay2/imagedb/content/sha256/"
	                      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	ck_assert_int_eq(runc_docker_image(v2, strlen(v2), rel, 20), -ENAMETOOLONG);
#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	static const char *const bad[] = {
	    "{\"Image\":\"sha256:abc\",\"Driver\":\"vfs\"}",
	    ("{\"Image\":\"sha256:"
	     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeF\","
	     "\"Driver\":\"vfs\"}"),
	    ("{\"Image\":\"sha256:" HEX64 "\",\"Driver\":\"../x\"}"),
	    ("{\"Image\":\"sha256:" HEX64 "\"}"),
	    "{\"Image\":\"busybox\",\"Driver\":\"vfs\"}",
	    "[]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(runc_docker_image(bad[i], strlen(bad[i]), rel, sizeof(rel)),
		                 -EINVAL);
}
END_TEST

START_TEST(test_edit_refused)
{
	int rc;
	ck_assert_ptr_null(edit("[]", NULL, &rc));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(edit("{\"a\":1,\"a\":2}", NULL, &rc));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(edit("{\"hooks\":[]}", NULL, &rc));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(edit("{\"hooks\":{\"poststop\":{}}}", NULL, &rc));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(edit("{\"annotations\":[]}", NULL, &rc));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(edit("{}", "{\"ID\":\"someone-else\"}", &rc));
	ck_assert_int_eq(rc, -ESTALE);
	ck_assert_ptr_null(edit("{}", "not json", &rc));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(
	    edit("{}", "{\"ID\":\"" ID "\",\"Config\":{\"Labels\":{\"io.secretd.name\":1}}}", &rc));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(edit("{}", "{\"ID\":\"" ID "\",\"Config\":{\"Labels\":[]}}", &rc));
	ck_assert_int_eq(rc, -EINVAL);
}
END_TEST

START_TEST(test_docker_dir)
{
	char dir[256];
	const char *cfg = "{\"mounts\":[{\"destination\":\"/etc/resolv.conf\",\"source\":\"/x/"
	                  "containers/other/resolv.conf\"},{\"destination\":\"/etc/hostname\","
	                  "\"source\":\"/var/lib/docker/containers/" ID "/hostname\"}]}";
	ck_assert_int_eq(runc_docker_dir(cfg, strlen(cfg), ID, dir, sizeof(dir)), 0);
	ck_assert_str_eq(dir, "/var/lib/docker/containers/" ID);
	/* too small a buffer, another id, a relative or dotted source, another destination */
	ck_assert_int_eq(runc_docker_dir(cfg, strlen(cfg), ID, dir, 10), -ENAMETOOLONG);
	ck_assert_int_eq(runc_docker_dir(cfg, strlen(cfg), "abc", dir, sizeof(dir)), -ENOENT);
	const char *rel = "{\"mounts\":[{\"destination\":\"/etc/hosts\",\"source\":\"containers/" ID
	                  "/hosts\"}]}";
	ck_assert_int_eq(runc_docker_dir(rel, strlen(rel), ID, dir, sizeof(dir)), -ENOENT);
	const char *dots = "{\"mounts\":[{\"destination\":\"/etc/hosts\",\"source\":\"/a/../"
	                   "containers/" ID "/hosts\"}]}";
	ck_assert_int_eq(runc_docker_dir(dots, strlen(dots), ID, dir, sizeof(dir)), -ENOENT);
	const char *other =
	    "{\"mounts\":[{\"destination\":\"/data\",\"source\":\"/v/containers/" ID "/hosts\"}]}";
	ck_assert_int_eq(runc_docker_dir(other, strlen(other), ID, dir, sizeof(dir)), -ENOENT);
	ck_assert_int_eq(runc_docker_dir("{", 1, ID, dir, sizeof(dir)), -EINVAL);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("runc_edit");
	TCase *tc = tcase_create("runc_edit");
	tcase_add_test(tc, test_args_shim_create);
	tcase_add_test(tc, test_args_forms);
	tcase_add_test(tc, test_args_bad);
	tcase_add_test(tc, test_edit_hooks);
	tcase_add_test(tc, test_edit_docker_labels);
	tcase_add_test(tc, test_edit_image_labels);
	tcase_add_test(tc, test_docker_image);
	tcase_add_test(tc, test_edit_refused);
	tcase_add_test(tc, test_docker_dir);
	suite_add_tcase(s, tc);
	return s;
}
