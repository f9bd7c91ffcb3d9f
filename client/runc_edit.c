/* runc_edit: runc's command line, and secretd's additions to a bundle's config.json. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "client/runc_edit.h"

/* runc's global options that take a value (runc 1.1: --root, --log, --log-format, --criu,
 * --rootless; containerd's shim and dockerd use the first three). */
static const char *const runc_global_valued[] = {"--root", "--log", "--log-format", "--criu",
                                                 "--rootless"};

static bool runc_global_takes_value(const char *arg)
{
	for (size_t i = 0; i < sizeof(runc_global_valued) / sizeof(runc_global_valued[0]); i++)
		if (strcmp(arg, runc_global_valued[i]) == 0)
			return true;
	return false;
}

/* "--NAME=VALUE" with NAME == name: VALUE, else NULL. */
static const char *runc_opt_value(const char *arg, const char *name)
{
	size_t n = strlen(name);
	if (strncmp(arg, name, n) == 0 && arg[n] == '=')
		return arg + n + 1;
	return NULL;
}

/* create/run options that take a value (runc 1.1), so that their values are not taken for the
 * container id. */
static const char *const runc_create_valued[] = {"--bundle", "-b", "--console-socket", "--pid-file",
                                                 "--preserve-fds"};

static bool runc_create_takes_value(const char *arg)
{
	for (size_t i = 0; i < sizeof(runc_create_valued) / sizeof(runc_create_valued[0]); i++)
		if (strcmp(arg, runc_create_valued[i]) == 0)
			return true;
	return false;
}

static int runc_own_option(struct runc_args *a, const char *arg, const char **why)
{
	static const struct {
		const char *name;
		size_t off;
	} own[] = {
	    {"--secretd-runc", offsetof(struct runc_args, runc)},
	    {"--secretd-hook", offsetof(struct runc_args, hook)},
	    {"--secretd-socket", offsetof(struct runc_args, socket)},
	    {"--secretd-docker-root", offsetof(struct runc_args, docker_root)},
	};
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		const char *v = runc_opt_value(arg, own[i].name);
		if (!v)
			continue;
		if (!*v) {
			*why = "a --secretd- option has an empty value";
			return -EINVAL;
		}
		*(const char **)((char *)a + own[i].off) = v;
		return 0;
	}
	*why = "unknown --secretd- option (--secretd-runc=, --secretd-hook=, --secretd-socket=, "
	       "--secretd-docker-root=)";
	return -EINVAL;
}

int runc_args_parse(int argc, char *const *argv, struct runc_args *a, const char **out_argv,
                    const char **why)
{
	memset(a, 0, sizeof(*a));
	if (argc < 1 || argc > RUNC_ARGC_MAX) {
		*why = "too many arguments";
		return -E2BIG;
	}
	for (int i = 0; i < argc; i++)
		if (!argv[i] || strnlen(argv[i], RUNC_ARG_MAX + 1) > RUNC_ARG_MAX) {
			*why = "an argument is too long";
			return -E2BIG;
		}
	int n = 0;
	out_argv[n++] = argv[0];
	int i = 1;
	/* Global options, ours among them, up to the subcommand. */
	for (; i < argc; i++) {
		const char *s = argv[i];
		if (strncmp(s, RUNC_OPT_PREFIX, strlen(RUNC_OPT_PREFIX)) == 0) {
			int r = runc_own_option(a, s, why);
			if (r < 0)
				return r;
			continue;
		}
		if (s[0] != '-')
			break;
		out_argv[n++] = s;
		const char *name = s, *v = NULL;
		if (runc_global_takes_value(s)) {
			if (i + 1 >= argc) {
				*why = "a runc option lacks its value";
				return -EINVAL;
			}
			v = argv[++i];
			out_argv[n++] = v;
		} else if ((v = runc_opt_value(s, "--log"))) {
			name = "--log";
		} else if ((v = runc_opt_value(s, "--log-format"))) {
			name = "--log-format";
		}
		if (!v)
			continue;
		if (strcmp(name, "--log") == 0)
			a->log = v;
		else if (strcmp(name, "--log-format") == 0)
			a->log_json = strcmp(v, "json") == 0;
	}
	if (i < argc)
		a->command = argv[i];
	/* The rest goes to runc unchanged; for create/run, note the bundle and the id. */
	bool creates = runc_args_creates(a);
	for (int j = i; j < argc; j++) {
		const char *s = argv[j];
		out_argv[n++] = s;
		if (!creates || j == i)
			continue;
		const char *v;
		if (strcmp(s, "--bundle") == 0 || strcmp(s, "-b") == 0) {
			if (j + 1 >= argc) {
				*why = "--bundle lacks its value";
				return -EINVAL;
			}
			a->bundle = argv[j + 1];
			out_argv[n++] = argv[++j];
		} else if ((v = runc_opt_value(s, "--bundle")) || (v = runc_opt_value(s, "-b"))) {
			a->bundle = v;
		} else if (runc_create_takes_value(s)) {
			if (j + 1 < argc)
				out_argv[n++] = argv[++j];
		} else if (s[0] != '-') {
			a->id = s;
		}
	}
	out_argv[n] = NULL;
	a->argc = n;
	return 0;
}

bool runc_args_creates(const struct runc_args *a)
{
	return a->command && (strcmp(a->command, "create") == 0 || strcmp(a->command, "run") == 0);
}

/* True when list (an array of hooks) has one whose path is path. */
static bool runc_has_hook(json_t *list, const char *path)
{
	size_t i;
	json_t *h;
	json_array_foreach(list, i, h)
	{
		const char *p = json_string_value(json_object_get(h, "path"));
		if (p && strcmp(p, path) == 0)
			return true;
	}
	return false;
}

/* Appends secretd's hook for stage to hooks[stage] (created when missing). */
static int runc_add_hook(json_t *hooks, const char *stage, const struct runc_edit_opts *o,
                         const char **why)
{
	json_t *list = json_object_get(hooks, stage);
	if (!list) {
		list = json_array();
		if (!list || json_object_set_new(hooks, stage, list) < 0)
			return -ENOMEM;
	} else if (!json_is_array(list)) {
		*why = "config.json: a hooks stage is not an array";
		return -EINVAL;
	}
	if (runc_has_hook(list, o->hook))
		return 0;
	json_t *h =
	    json_pack("{s:s, s:[s,s,s,s], s:i}", "path", o->hook, "args", "secretd-oci-hook",
	              "--socket", o->socket, stage, "timeout", RUNC_HOOK_TIMEOUT);
	if (!h || json_array_append_new(list, h) < 0)
		return -ENOMEM;
	return 0;
}

/* The image's config.Labels (an object, or NULL when it has none); -EINVAL when malformed. */
static int runc_image_labels(const char *image, size_t image_len, json_t **out, const char **why)
{
	*out = NULL;
	if (image_len > RUNC_DOCKER_CONFIG_MAX) {
		*why = "the image's config is too large";
		return -E2BIG;
	}
	json_t *img = json_loadb(image, image_len, JSON_REJECT_DUPLICATES, NULL);
	json_t *labels = json_object_get(json_object_get(img, "config"), "Labels");
	if (!json_is_object(img) || (labels && !json_is_object(labels) && !json_is_null(labels))) {
		json_decref(img);
		*why = "the image's config is not a JSON object with config.Labels";
		return -EINVAL;
	}
	if (json_is_object(labels))
		*out = json_incref(labels);
	json_decref(img);
	return 0;
}

/* Copies the io.secretd.* labels of Docker's config.v2.json (Config.Labels) into ann, except
 * those the image set: Docker merges an image's labels into every container's, and an image must
 * not choose which secrets its containers get. */
static int runc_docker_labels(json_t *ann, const struct runc_docker *d, const char *id,
                              const char **why)
{
	if (d->config_len > RUNC_DOCKER_CONFIG_MAX) {
		*why = "Docker's config.v2.json is too large";
		return -E2BIG;
	}
	json_t *v2 = json_loadb(d->config, d->config_len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(v2)) {
		json_decref(v2);
		*why = "Docker's config.v2.json is not a JSON object";
		return -EINVAL;
	}
	json_t *from_image = NULL;
	int r = 0;
	const char *v2id = json_string_value(json_object_get(v2, "ID"));
	if (!v2id || !id || strcmp(v2id, id) != 0) {
		*why = "Docker's config.v2.json is another container's";
		r = -ESTALE;
		goto out;
	}
	json_t *labels = json_object_get(json_object_get(v2, "Config"), "Labels");
	if (labels && !json_is_object(labels) && !json_is_null(labels)) {
		*why = "Docker's config.v2.json: Config.Labels is not an object";
		r = -EINVAL;
		goto out;
	}
	size_t copied = 0;
	const char *k;
	json_t *v;
	json_object_foreach(labels, k, v)
	{
		if (strncmp(k, "io.secretd.", strlen("io.secretd.")) != 0)
			continue;
		const char *s = json_string_value(v);
		if (!s) {
			*why = "Docker's config.v2.json: an io.secretd.* label is not a string";
			r = -EINVAL;
			goto out;
		}
		if (++copied > RUNC_LABELS_MAX || strlen(k) > RUNC_LABEL_MAX ||
		    strlen(s) > RUNC_LABEL_MAX) {
			*why = "too many or too long io.secretd.* labels";
			r = -E2BIG;
			goto out;
		}
		if (!d->image) {
			*why = "the container has io.secretd.* labels but its image's config "
			       "cannot be "
			       "read: cannot tell whether the image set them";
			r = -ENODATA;
			goto out;
		}
		if (!from_image &&
		    (r = runc_image_labels(d->image, d->image_len, &from_image, why)) < 0)
			goto out;
		const char *iv = json_string_value(json_object_get(from_image, k));
		if (iv && strcmp(iv, s) == 0)
			continue; /* the image's label: ignored */
		if (json_object_get(ann, k))
			continue; /* an OCI annotation (Docker >= 24 --annotation) wins */
		if (json_object_set_new(ann, k, json_string(s)) < 0) {
			r = -ENOMEM;
			goto out;
		}
	}
out:
	json_decref(from_image);
	json_decref(v2);
	return r;
}

int runc_edit_config(const char *cfg, size_t cfg_len, const struct runc_docker *docker,
                     const struct runc_edit_opts *o, char **out, size_t *out_len, const char **why)
{
	*out = NULL;
	*out_len = 0;
	if (cfg_len > RUNC_CONFIG_MAX) {
		*why = "config.json is too large";
		return -E2BIG;
	}
	json_t *c = json_loadb(cfg, cfg_len, JSON_REJECT_DUPLICATES, NULL);
	int r = -EINVAL;
	if (!json_is_object(c)) {
		*why = "config.json is not a JSON object";
		goto out;
	}
	json_t *hooks = json_object_get(c, "hooks");
	if (!hooks || json_is_null(hooks)) {
		hooks = json_object();
		if (!hooks || json_object_set_new(c, "hooks", hooks) < 0) {
			r = -ENOMEM;
			goto out;
		}
	} else if (!json_is_object(hooks)) {
		*why = "config.json: hooks is not an object";
		goto out;
	}
	json_t *ann = json_object_get(c, "annotations");
	if (!ann || json_is_null(ann)) {
		ann = json_object();
		if (!ann || json_object_set_new(c, "annotations", ann) < 0) {
			r = -ENOMEM;
			goto out;
		}
	} else if (!json_is_object(ann)) {
		*why = "config.json: annotations is not an object";
		goto out;
	}
	if (docker) {
		r = runc_docker_labels(ann, docker, o->id, why);
		if (r < 0)
			goto out;
	}
	r = runc_add_hook(hooks, "createRuntime", o, why);
	if (r == 0)
		r = runc_add_hook(hooks, "poststop", o, why);
	if (r < 0)
		goto out;
	/* An empty annotations object is valid OCI, but leave the spec as it was. */
	if (json_object_size(ann) == 0)
		json_object_del(c, "annotations");
	char *s = json_dumps(c, JSON_COMPACT);
	if (!s) {
		r = -ENOMEM;
		goto out;
	}
	*out = s;
	*out_len = strlen(s);
	r = 0;
out:
	json_decref(c);
	return r;
}

int runc_docker_dir(const char *cfg, size_t cfg_len, const char *id, char *dir, size_t len)
{
	if (cfg_len > RUNC_CONFIG_MAX)
		return -E2BIG;
	json_t *c = json_loadb(cfg, cfg_len, 0, NULL);
	if (!json_is_object(c)) {
		json_decref(c);
		return -EINVAL;
	}
	static const char *const files[] = {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"};
	int r = -ENOENT;
	size_t idlen = id ? strlen(id) : 0;
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(c, "mounts"), i, m)
	{
		const char *dst = json_string_value(json_object_get(m, "destination"));
		const char *src = json_string_value(json_object_get(m, "source"));
		if (!dst || !src || src[0] != '/' || idlen == 0)
			continue;
		bool known = false;
		for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++)
			known |= strcmp(dst, files[f]) == 0;
		if (!known)
			continue;
		/* src is DIR/FILE with DIR ending in "/containers/ID" */
		const char *slash = strrchr(src, '/');
		size_t dlen = (size_t)(slash - src);
		static const char tail[] = "/containers/";
		size_t tlen = strlen(tail);
		if (dlen < tlen + idlen || memcmp(src + dlen - idlen, id, idlen) != 0 ||
		    memcmp(src + dlen - idlen - tlen, tail, tlen) != 0)
			continue;
		if (strstr(src, "/../") || strstr(src, "/./"))
			continue;
		if (dlen >= len) {
			r = -ENAMETOOLONG;
			break;
		}
		memcpy(dir, src, dlen);
		dir[dlen] = '\0';
		r = 0;
		break;
	}
	json_decref(c);
	return r;
}

int runc_docker_image(const char *docker, size_t docker_len, char *rel, size_t len)
{
	if (docker_len > RUNC_DOCKER_CONFIG_MAX)
		return -E2BIG;
	json_t *v2 = json_loadb(docker, docker_len, 0, NULL);
	const char *img = json_string_value(json_object_get(v2, "Image"));
	const char *drv = json_string_value(json_object_get(v2, "Driver"));
	static const char sha[] = "sha256:";
	int r = -EINVAL;
	if (!img || !drv || strncmp(img, sha, strlen(sha)) != 0)
		goto out;
	const char *hex = img + strlen(sha);
	if (strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64)
		goto out;
	size_t dl = strlen(drv);
	if (dl == 0 || dl > 64 || strspn(drv, "abcdefghijklmnopqrstuvwxyz0123456789_-") != dl)
		goto out;
	int n = snprintf(rel, len, "image/%s/imagedb/content/sha256/%s", drv, hex);
	r = n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
out:
	json_decref(v2);
	return r;
}
