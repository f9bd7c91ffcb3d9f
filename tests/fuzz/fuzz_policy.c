/* Fuzzes policy_selector_check and policy_selector_match against fixed identities, then uses the
 * input as a grant's selector, pattern and path in policy_view. */
#include <stdlib.h>
#include <string.h>

#include "broker/rules/policy.h"
#include "common/names.h"
#include "fuzz.h"

static const struct policy_label fuzz_labels[] = {{"app", "web"}, {"tier", "a=b"}, {"e", ""}};

static const struct policy_identity fuzz_ctr = {
    .container = true,
    .runtime = "docker",
    .id = "4e1f5c8b2d3a6f7e9c0b1a2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f",
    .name = "web-1",
    .labels = fuzz_labels,
    .nlabels = 3,
    .cgroup = "/docker/4e1f5c8b2d3a6f7e9c0b1a2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f",
    .uid = 1000,
    .gid = 1000,
};

static const struct policy_identity fuzz_host = {
    .container = false,
    .runtime = "host",
    .id = "",
    .name = "",
    .cgroup = "/user.slice",
    .uid = 1000,
    .gid = 1000,
};

static const char *const fuzz_secrets[] = {"a", "a/b", "a/b/c", "db/password", "x.previous", "z"};

static void fuzz_view(const struct policy_grant *g)
{
	struct policy_file *f = NULL;
	size_t n = 0;
	if (policy_view(g, 1, fuzz_secrets, 6, &fuzz_ctr, &f, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		size_t l = strnlen(f[i].path, sizeof(f[i].path));
		if (l == sizeof(f[i].path) || names_check(f[i].path, l, NULL) != 0)
			abort();
		if (i > 0 && strcmp(f[i - 1].path, f[i].path) >= 0)
			abort();
		if (f[i].mode & ~0777u)
			abort();
	}
	free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL;
	int r = policy_selector_check((const char *)data, size, &why);
	if (r != 0 && (!why || !*why))
		abort();
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	bool nul = strlen(s) != size;
	bool mc = policy_selector_match(s, &fuzz_ctr);
	bool mh = policy_selector_match(s, &fuzz_host);
	if (r != 0 && !nul && (mc || mh))
		abort(); /* an invalid selector matched */
	if (mh && strncmp(s, "uid:", 4) != 0)
		abort(); /* only uid: may match a host process */
	if (mc && strncmp(s, "uid:", 4) == 0)
		abort(); /* uid: is for host processes: never a container, whatever its uid */
	/* The input as selector (with a pattern that covers all), as pattern, and as path. */
	struct policy_grant g = {.secret = "*", .selector = s, .uid = -1, .gid = -1, .flags = 1};
	fuzz_view(&g);
	g = (struct policy_grant){.secret = s, .selector = "runtime:docker", .uid = -1, .gid = -1};
	fuzz_view(&g);
	g = (struct policy_grant){.secret = "a/*",
	                          .selector = "runtime:docker",
	                          .path = s,
	                          .uid = -1,
	                          .gid = -1,
	                          .mode = (uint32_t)size * 0x1234567u,
	                          .flags = 1};
	fuzz_view(&g);
	g.secret = "*";
	fuzz_view(&g);
	g.secret = "db/password";
	fuzz_view(&g);
	free(s);
	return 0;
}
