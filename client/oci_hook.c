/* secretd-oci-hook: the OCI runtime hook (createRuntime, poststop) that registers a container with
 * secretd so the broker can mount its granted secrets at /run/secrets, and forgets it at the end.
 * It never sees a secret value: it only sends the OCI state (id, pid, root, annotations). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "client/client.h"
#include "common/cleanup.h"
#include "common/limits.h"

#define HOOK_STATE_MAX (1024 * 1024)       /* the OCI state JSON on stdin */
#define HOOK_CONFIG_MAX (16 * 1024 * 1024) /* BUNDLE/config.json */
#define HOOK_ID_MAX 1024
#define HOOK_NAME_MAX 255 /* --name */
/* Seconds the broker gets to answer for a container that asked for no secrets, and at poststop
 * (the broker also sees the init exit on its own): a hung broker must not stop such containers
 * or their removal. A container that asked for secrets waits for the client's own timeout (30 s;
 * secretd-runc and the CDI spec give the hook 60). */
#define HOOK_OPTIONAL_WAIT_S 5
#define HOOK_ANN_PREFIX "io.secretd."
#define HOOK_ANN_LABEL "io.secretd.label."

enum hook_stage { STAGE_AUTO, STAGE_CREATE, STAGE_POSTSTOP };

static void hook_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void hook_say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("secretd-oci-hook: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void hook_usage(FILE *f)
{
	fprintf(f,
	        "usage: secretd-oci-hook [--socket PATH] [--name NAME] [--wants]\n"
	        "                        [createRuntime|prestart|poststop]\n"
	        "\n"
	        "OCI runtime hook for secretd: reads the container state JSON on stdin.\n"
	        "  createRuntime  register the container; the broker mounts its secrets\n"
	        "  prestart       same as createRuntime (for runtimes without createRuntime)\n"
	        "  poststop       forget the container\n"
	        "Without a stage the hook uses the state's status (\"stopped\" means poststop).\n"
	        "\n"
	        "  --socket PATH  the broker's admin socket (default: $SECRETD_SOCKET,\n"
	        "                 else " SECRETD_RUNTIME_DIR_DEFAULT "/" SECRETD_ADMIN_SOCK ")\n"
	        "  --name NAME    the container's name for name: grants (wins over\n"
	        "                 io.secretd.name); implies --wants\n"
	        "  --wants        the container asked for secrets (a CDI device): it does not\n"
	        "                 start when the broker cannot be reached\n"
	        "  --help         this text\n"
	        "\n"
	        "Annotations: io.secretd.name=NAME, io.secretd.label.KEY=VALUE,\n"
	        "io.secretd.mount=/abs/path (default " SECRETD_MOUNT_DEFAULT "). Any io.secretd.*\n"
	        "annotation means the container wants secrets: it then fails to start when the\n"
	        "broker cannot be reached.\n");
}

/* Reads all of fd, at most max bytes; -EFBIG when there is more. */
static int hook_read_all(int fd, size_t max, char **out, size_t *len)
{
	size_t cap = 8192, n = 0;
	_cleanup_free_ char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			if (cap > max)
				return -EFBIG;
			cap *= 2;
			char *nb = realloc(buf, cap);
			if (!nb)
				return -ENOMEM;
			buf = nb;
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max)
			return -EFBIG;
	}
	*out = TAKE_PTR(buf);
	*len = n;
	return 0;
}

/* Container ids go into a URL path: accept what runc/crun/podman/containerd use. */
static bool hook_id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > HOOK_ID_MAX)
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.' || *p == '+'))
			return false;
	return id[0] != '.';
}

/* BUNDLE/config.json, or NULL (with *why) when it cannot be read. */
static json_t *hook_load_config(const char *bundle, const char **why)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/config.json", bundle) >= (int)sizeof(path)) {
		*why = "bundle path too long";
		return NULL;
	}
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*why = strerror(errno);
		return NULL;
	}
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = hook_read_all(fd, HOOK_CONFIG_MAX, &buf, &len);
	if (r < 0) {
		*why = strerror(-r);
		return NULL;
	}
	json_t *cfg = json_loadb(buf, len, 0, NULL);
	if (!json_is_object(cfg)) {
		json_decref(cfg);
		*why = "not a JSON object";
		return NULL;
	}
	return cfg;
}

/* The container's root as an absolute path: state.root (crun), else config.json root.path,
 * relative to the bundle (runc, podman). Writes "" when unknown. */
static int hook_root(json_t *state, json_t *cfg, const char *bundle, char *out, size_t len)
{
	const char *root = json_string_value(json_object_get(state, "root"));
	if (!root || !*root)
		root = json_string_value(json_object_get(json_object_get(cfg, "root"), "path"));
	out[0] = '\0';
	if (!root || !*root)
		return 0;
	char joined[PATH_MAX];
	int n;
	if (root[0] == '/')
		n = snprintf(joined, sizeof(joined), "%s", root);
	else if (bundle && bundle[0] == '/')
		n = snprintf(joined, sizeof(joined), "%s/%s", bundle, root);
	else
		return -EINVAL;
	if (n < 0 || (size_t)n >= sizeof(joined))
		return -ENAMETOOLONG;
	/* runc refuses a symlinked root, so this only tidies "./rootfs" and "//". The hook runs in
	 * the runtime's mount namespace, where the container's root has the same path. */
	char real[PATH_MAX];
	const char *p = realpath(joined, real) ? real : joined;
	if (strlen(p) >= len)
		return -ENAMETOOLONG;
	snprintf(out, len, "%s", p);
	return 0;
}

/* "runc" / "crun" when the hook's parent is that runtime, else NULL. */
static const char *hook_parent_runtime(void)
{
	char path[64], comm[32] = "";
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)getppid());
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f || !fgets(comm, sizeof(comm), f))
		return NULL;
	comm[strcspn(comm, "\n")] = '\0';
	if (strncmp(comm, "runc", 4) == 0)
		return "runc";
	if (strncmp(comm, "crun", 4) == 0)
		return "crun";
	return NULL;
}

static const char *hook_name(json_t *ann)
{
	/* Ours first; then what orchestrators put in the spec (podman 4.3 puts the name nowhere).
	 */
	static const char *const keys[] = {
	    "io.secretd.name",
	    "io.kubernetes.cri.container-name", /* containerd CRI */
	    "io.kubernetes.container.name",     /* CRI-O */
	    "nerdctl/name",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = json_string_value(json_object_get(ann, keys[i]));
		if (v && *v)
			return v;
	}
	return "";
}

static char hook_give_up_msg[PATH_MAX + 256];
static size_t hook_give_up_len;

static void hook_give_up(int sig)
{
	if (write(STDERR_FILENO, hook_give_up_msg, hook_give_up_len) < 0)
		_exit(0); /* stderr is gone: nobody to tell */
	_exit(0);
}

/* From here on, the process exits 0 (with a line on stderr saying why) if the broker at sock
 * has not answered within HOOK_OPTIONAL_WAIT_S. */
static int hook_bound_wait(const char *sock, const char *what)
{
	int n = snprintf(hook_give_up_msg, sizeof(hook_give_up_msg),
	                 "secretd-oci-hook: secretd at %s did not answer in %d s; %s\n", sock,
	                 HOOK_OPTIONAL_WAIT_S, what);
	if (n < 0)
		return -EINVAL;
	hook_give_up_len =
	    (size_t)n < sizeof(hook_give_up_msg) ? (size_t)n : sizeof(hook_give_up_msg) - 1;
	struct sigaction sa = {.sa_handler = hook_give_up};
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		return -errno;
	alarm(HOOK_OPTIONAL_WAIT_S);
	return 0;
}

static bool hook_unreachable(int r)
{
	return r == -ECONNREFUSED || r == -ENOENT || r == -EACCES || r == -EIO;
}

/* From the hook's own arguments (a CDI device's hook): NULL / false when not given. */
struct hook_opts {
	const char *name;
	bool wants;
};

static int hook_create(const char *sock, json_t *state, const struct hook_opts *ho)
{
	const char *id = json_string_value(json_object_get(state, "id"));
	const char *bundle = json_string_value(json_object_get(state, "bundle"));
	json_t *ann = json_object_get(state, "annotations");
	json_int_t pid = json_integer_value(json_object_get(state, "pid"));

	bool wants = ho->wants || ho->name;
	const char *mount = SECRETD_MOUNT_DEFAULT;
	json_t *labels = json_object();
	if (!labels) {
		hook_say("out of memory");
		return 1;
	}
	const char *key;
	json_t *val;
	json_object_foreach(ann, key, val)
	{
		if (strncmp(key, HOOK_ANN_PREFIX, strlen(HOOK_ANN_PREFIX)) != 0)
			continue;
		wants = true;
		const char *v = json_string_value(val);
		if (!v)
			continue;
		if (strncmp(key, HOOK_ANN_LABEL, strlen(HOOK_ANN_LABEL)) == 0 &&
		    key[strlen(HOOK_ANN_LABEL)])
			json_object_set_new(labels, key + strlen(HOOK_ANN_LABEL), json_string(v));
		else if (strcmp(key, HOOK_ANN_PREFIX "mount") == 0)
			mount = v;
	}

	int rc = 1;
	json_t *cfg = NULL, *body = NULL, *reply = NULL;
	struct client_resp resp = {0};
	if (!id || !hook_id_ok(id)) {
		hook_say("the state has no valid container id");
		goto out;
	}
	if (pid <= 0) {
		hook_say("the state of container %s has no pid (run me at createRuntime)", id);
		goto out;
	}
	if (mount[0] != '/') {
		hook_say("io.secretd.mount must be an absolute path, not \"%s\"", mount);
		goto out;
	}
	const char *why = NULL;
	if (bundle && *bundle)
		cfg = hook_load_config(bundle, &why);
	char root[PATH_MAX];
	int r = hook_root(state, cfg, bundle, root, sizeof(root));
	if (r < 0) {
		hook_say("cannot tell the root of container %s: %s", id, strerror(-r));
		goto out;
	}
	if (!root[0] && wants) {
		/* Without the root the broker would mount over the runtime's own /run/secrets. */
		hook_say("cannot tell the root of container %s (config.json: %s)", id,
		         why ? why : "no root.path");
		goto out;
	}

	/* Runtimes do not name themselves to hooks: podman marks its spec; runc and crun run the
	 * hook themselves. */
	const char *runtime = hook_parent_runtime();
	const char *mgr = json_string_value(json_object_get(ann, "io.container.manager"));
	if (mgr && strcmp(mgr, "libpod") == 0)
		runtime = "podman";
	else if (!runtime)
		runtime = "oci";

	body = json_pack("{s:s, s:I, s:s, s:s, s:O, s:s, s:b}", "id", id, "pid", pid, "mount",
	                 mount, "name", ho->name ? ho->name : hook_name(ann), "labels", labels,
	                 "runtime", runtime, "wants", wants);
	if (!body) {
		hook_say("out of memory");
		goto out;
	}
	if (root[0])
		json_object_set_new(body, "root", json_string(root));
	if (bundle && *bundle)
		json_object_set_new(body, "bundle", json_string(bundle));
	/* At createRuntime the init still runs as root: tell the broker the user it will become. */
	json_t *user = json_object_get(json_object_get(cfg, "process"), "user");
	if (json_is_integer(json_object_get(user, "uid")))
		json_object_set(body, "uid", json_object_get(user, "uid"));
	if (json_is_integer(json_object_get(user, "gid")))
		json_object_set(body, "gid", json_object_get(user, "gid"));

	if (!wants) {
		r = hook_bound_wait(sock,
		                    "the container asked for no secrets: it starts without them");
		if (r < 0) {
			hook_say("cannot bound the wait for secretd: %s", strerror(-r));
			goto out;
		}
	}
	const char *err = NULL;
	r = client_request_json(sock, "POST", "/v1/containers", body, &resp, &reply, &err);
	if (r < 0) {
		if (hook_unreachable(r) && !wants) {
			rc = 0; /* nobody asked for secrets: a stopped broker must not stop
			           containers */
			goto out;
		}
		hook_say("cannot reach secretd at %s: %s", sock, err ? err : strerror(-r));
		goto out;
	}
	if (resp.status < 200 || resp.status >= 300) {
		char buf[512];
		hook_say("container %s: %s", id, client_error(&resp, buf, sizeof(buf)));
		goto out;
	}
	rc = 0;
out:
	client_resp_free(&resp);
	json_decref(reply);
	json_decref(body);
	json_decref(cfg);
	json_decref(labels);
	return rc;
}

static int hook_poststop(const char *sock, json_t *state)
{
	const char *id = json_string_value(json_object_get(state, "id"));
	if (!id || !hook_id_ok(id)) {
		hook_say("the state has no valid container id");
		return 1;
	}
	char path[HOOK_ID_MAX + 32];
	snprintf(path, sizeof(path), "/v1/containers/%s", id);
	int r = hook_bound_wait(sock, "it notices the container's exit on its own");
	if (r < 0) {
		hook_say("cannot bound the wait for secretd: %s", strerror(-r));
		return 1;
	}
	struct client_resp resp = {0};
	const char *err = NULL;
	r = client_request(sock, "DELETE", path, NULL, 0, NULL, &resp, &err);
	if (r < 0) {
		if (hook_unreachable(r))
			return 0; /* no broker, nothing to clean up */
		hook_say("cannot reach secretd at %s: %s", sock, err ? err : strerror(-r));
		return 1;
	}
	int rc = 0;
	if ((resp.status < 200 || resp.status >= 300) && resp.status != 404) {
		char buf[512];
		hook_say("container %s: %s", id, client_error(&resp, buf, sizeof(buf)));
		rc = 1;
	}
	client_resp_free(&resp);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"name", required_argument, NULL, 'n'},
	    {"wants", no_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *sock_opt = NULL;
	struct hook_opts ho = {0};
	int c;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock_opt = optarg;
			break;
		case 'n':
			if (!*optarg || strlen(optarg) > HOOK_NAME_MAX) {
				hook_say("--name must have 1 to %d bytes", HOOK_NAME_MAX);
				return 2;
			}
			ho.name = optarg;
			break;
		case 'w':
			ho.wants = true;
			break;
		case 'h':
			hook_usage(stdout);
			return 0;
		default:
			hook_usage(stderr);
			return 2;
		}
	}
	enum hook_stage stage = STAGE_AUTO;
	if (optind < argc) {
		const char *s = argv[optind++];
		if (strcmp(s, "createRuntime") == 0 || strcmp(s, "prestart") == 0)
			stage = STAGE_CREATE;
		else if (strcmp(s, "poststop") == 0)
			stage = STAGE_POSTSTOP;
		else {
			hook_say("unknown stage \"%s\" (createRuntime, prestart or poststop)", s);
			return 2;
		}
	}
	if (optind < argc) {
		hook_usage(stderr);
		return 2;
	}

	_cleanup_free_ char *in = NULL;
	size_t len = 0;
	int r = hook_read_all(STDIN_FILENO, HOOK_STATE_MAX, &in, &len);
	if (r < 0) {
		hook_say("cannot read the OCI state on stdin: %s",
		         r == -EFBIG ? "more than 1 MiB" : strerror(-r));
		return 1;
	}
	json_error_t jerr;
	json_t *state = json_loadb(in, len, 0, &jerr);
	if (!json_is_object(state)) {
		hook_say("the OCI state on stdin is not a JSON object: %s",
		         state ? "wrong type" : jerr.text);
		json_decref(state);
		return 1;
	}
	if (stage == STAGE_AUTO) {
		const char *st = json_string_value(json_object_get(state, "status"));
		stage = st && strcmp(st, "stopped") == 0 ? STAGE_POSTSTOP : STAGE_CREATE;
	}
	const char *sock = client_socket(sock_opt, false);
	int rc =
	    stage == STAGE_POSTSTOP ? hook_poststop(sock, state) : hook_create(sock, state, &ho);
	json_decref(state);
	return rc;
}
