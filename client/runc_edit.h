/* runc_edit: the pure parts of secretd-runc (client/runc_wrapper.c), kept apart so that they can
 * be fuzzed: reading runc's command line, and adding secretd's hooks and annotations to a
 * bundle's config.json. Functions return 0 or a negative errno unless said otherwise. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#define RUNC_ARGC_MAX 1024                       /* arguments secretd-runc accepts */
#define RUNC_ARG_MAX 4096                        /* bytes in one argument */
#define RUNC_CONFIG_MAX (16 * 1024 * 1024)       /* BUNDLE/config.json */
#define RUNC_DOCKER_CONFIG_MAX (4 * 1024 * 1024) /* Docker's config.v2.json */
#define RUNC_LABELS_MAX 256                      /* io.secretd.* labels copied from Docker */
#define RUNC_LABEL_MAX 1024                      /* bytes in one copied label key or value */
#define RUNC_HOOK_TIMEOUT 60 /* seconds runc gives each added hook (its client gives up at 30) */
#define RUNC_OPT_PREFIX "--secretd-" /* secretd-runc's own options, never passed on */

/* What secretd-runc learned from its argv. Pointers point into argv. */
struct runc_args {
	const char *command; /* runc's subcommand ("create", "run", "state", ...), NULL if none */
	const char *bundle;  /* --bundle / -b of create and run, NULL if not given (runc: cwd) */
	const char *id;      /* the container id (last argument of create / run), or NULL */
	const char *log;     /* runc's --log FILE, or NULL */
	bool log_json;       /* --log-format json */
	/* secretd-runc's own options (--secretd-runc=PATH, --secretd-hook=PATH,
	 * --secretd-socket=PATH, --secretd-docker-root=DIR), NULL when absent */
	const char *runc, *hook, *socket, *docker_root;
	int argc; /* runc's argv without our options: argv[0..argc) of the caller's array */
};

/* Reads argv (argc entries, argv[0] the program) as runc's command line, with secretd-runc's
 * own `--secretd-NAME=VALUE` options anywhere before the subcommand. Writes runc's arguments
 * (argv[0] first, our options dropped) into out_argv, which has room for argc + 1 entries
 * (NULL-terminated). -E2BIG: too many or too long arguments; -EINVAL: an unknown --secretd-
 * option, or an option without its value (*why says which, static). */
int runc_args_parse(int argc, char *const *argv, struct runc_args *a, const char **out_argv,
                    const char **why);

/* True when runc's subcommand creates a container (create, run): the bundle is edited then. */
bool runc_args_creates(const struct runc_args *a);

struct runc_edit_opts {
	const char *hook;   /* absolute path of secretd-oci-hook */
	const char *socket; /* the broker's admin socket, passed to the hook as --socket */
	const char *id;     /* the container id (checked against Docker's config.v2.json) */
};

/* A Docker container's files, as read by secretd-runc. */
struct runc_docker {
	const char *config; /* DATA_ROOT/containers/ID/config.v2.json */
	size_t config_len;
	const char *image; /* its image's config (DATA_ROOT/image/DRIVER/imagedb/content/sha256/
	                      HEX), NULL when it cannot be read */
	size_t image_len;
};

/* Adds secretd's createRuntime and poststop hooks (secretd-oci-hook --socket SOCKET STAGE,
 * timeout RUNC_HOOK_TIMEOUT) to config.json (cfg, cfg_len bytes) unless a hook with the same
 * path is already there, and, for a Docker container (docker non-NULL), copies the io.secretd.*
 * labels of config.v2.json into the annotations: not those the image set (same key and value in
 * the image's config.Labels), and not over an annotation already present. *out gets the new
 * config.json (malloc'd, NUL-terminated, caller frees), *out_len its length. -EINVAL: not JSON,
 * or the wrong shape (*why says what, static); -E2BIG: past a RUNC_* limit; -ESTALE:
 * config.v2.json belongs to another container; -ENODATA: io.secretd.* labels but no image
 * config to tell where they come from; -ENOMEM. */
int runc_edit_config(const char *cfg, size_t cfg_len, const struct runc_docker *docker,
                     const struct runc_edit_opts *o, char **out, size_t *out_len, const char **why);

/* The path of the container's image config relative to Docker's data root
 * ("image/DRIVER/imagedb/content/sha256/HEX") from config.v2.json (docker, docker_len bytes:
 * its Image "sha256:HEX" and Driver), written into rel (len bytes). -EINVAL when they are
 * missing or not of that shape; -ENAMETOOLONG; -E2BIG. */
int runc_docker_image(const char *docker, size_t docker_len, char *rel, size_t len);

/* The directory Docker keeps this container's files in (DATA_ROOT/containers/ID), as seen in
 * config.json's bind mounts of /etc/hostname, /etc/hosts or /etc/resolv.conf (cfg, cfg_len
 * bytes): written into dir (len bytes). -ENOENT when no such mount names a directory
 * ".../containers/ID" (not a Docker container); -EINVAL: not JSON; -ENAMETOOLONG. */
int runc_docker_dir(const char *cfg, size_t cfg_len, const char *id, char *dir, size_t len);
