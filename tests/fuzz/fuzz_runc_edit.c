/* Fuzzes secretd-runc's parsers (client/runc_edit.c): the input is config.json, optionally
 * followed by a NUL byte and Docker's config.v2.json, optionally followed by a NUL byte and the
 * image's config. runc_edit_config must either refuse it or
 * produce a JSON object carrying both hooks, which a second edit leaves unchanged;
 * runc_docker_dir must write a path inside its buffer; runc_args_parse gets the input's lines as
 * an argv. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client/runc_edit.h"
#include "fuzz.h"

#define FUZZ_ID "4e1f5c8b2d3a6f7e9c0b1a2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"
#define FUZZ_ARGS_MAX 64

static void fuzz_args(const char *buf, size_t size)
{
	char *copy = malloc(size + 1);
	if (!copy)
		return;
	memcpy(copy, buf, size);
	copy[size] = '\0';
	char *argv[FUZZ_ARGS_MAX];
	const char *out[FUZZ_ARGS_MAX + 1];
	int argc = 0;
	argv[argc++] = "secretd-runc";
	for (char *s = copy, *line; argc < FUZZ_ARGS_MAX && (line = strsep(&s, "\n"));)
		argv[argc++] = line;
	struct runc_args a;
	const char *why = NULL;
	if (runc_args_parse(argc, argv, &a, out, &why) == 0) {
		if (a.argc > argc || out[a.argc] != NULL)
			__builtin_trap();
		/* runc's argv is argv in order with only our options left out. */
		for (int i = 1, j = 1; i < a.argc; i++, j++) {
			while (j < argc && out[i] != argv[j])
				j++;
			if (j == argc)
				__builtin_trap();
		}
		if (a.command && strncmp(a.command, RUNC_OPT_PREFIX, strlen(RUNC_OPT_PREFIX)) == 0)
			__builtin_trap();
	} else if (!why) {
		__builtin_trap();
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	const char *nul = memchr(buf, '\0', size);
	size_t cfg_len = nul ? (size_t)(nul - buf) : size;
	struct runc_docker d = {0};
	if (nul) {
		d.config = nul + 1;
		d.config_len = size - cfg_len - 1;
		const char *nul2 = memchr(d.config, '\0', d.config_len);
		if (nul2) {
			d.image = nul2 + 1;
			d.image_len = d.config_len - (size_t)(nul2 - d.config) - 1;
			d.config_len = (size_t)(nul2 - d.config);
		}
	}
	const struct runc_docker *docker = nul ? &d : NULL;

	const struct runc_edit_opts o = {
	    .hook = "/usr/libexec/secretd/secretd-oci-hook",
	    .socket = "/run/secretd/admin.sock",
	    .id = FUZZ_ID,
	};
	char *out = NULL, *out2 = NULL;
	size_t len = 0, len2 = 0;
	const char *why = NULL;
	int r = runc_edit_config(buf, cfg_len, docker, &o, &out, &len, &why);
	if (r == 0) {
		json_t *j = json_loadb(out, len, 0, NULL);
		json_t *hooks = json_object_get(j, "hooks");
		if (!json_is_object(j) ||
		    json_array_size(json_object_get(hooks, "createRuntime")) < 1 ||
		    json_array_size(json_object_get(hooks, "poststop")) < 1)
			__builtin_trap();
		json_decref(j);
		/* Editing the result again (as a retried create would) adds nothing. */
		if (runc_edit_config(out, len, docker, &o, &out2, &len2, &why) != 0 ||
		    len2 != len || memcmp(out, out2, len) != 0)
			__builtin_trap();
	} else if (r != -EINVAL && r != -E2BIG && r != -ESTALE && r != -ENODATA && r != -ENOMEM) {
		__builtin_trap();
	}
	free(out);
	free(out2);

	char dir[256];
	r = runc_docker_dir(buf, cfg_len, FUZZ_ID, dir, sizeof(dir));
	if (r == 0 && strnlen(dir, sizeof(dir)) >= sizeof(dir))
		__builtin_trap();

	char rel[128];
	if (d.config && runc_docker_image(d.config, d.config_len, rel, sizeof(rel)) == 0 &&
	    (strncmp(rel, "image/", 6) != 0 || strstr(rel, "..")))
		__builtin_trap();

	if (size <= 4096)
		fuzz_args(buf, size);
	return 0;
}
