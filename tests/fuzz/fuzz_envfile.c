/* Fuzz target: the .env parser, the Dockerfile ENV/ARG parser and the compose / Kubernetes YAML
 * extraction, each on the whole input, with every variable judged and masked (scan_judge parses
 * URLs, references and token formats inside values). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "client/envfile.h"
#include "client/scan.h"
#include "fuzz.h"

static int on_env(void *ctx, const char *name, size_t nlen, const char *val, size_t vlen,
                  unsigned line)
{
	char m[SCAN_MASK_MAX];
	if (val[vlen] != '\0' || !envfile_name_ok(name, nlen) || line == 0)
		__builtin_trap();
	scan_judge(name, nlen, val, vlen, NULL);
	scan_mask(val, vlen, m);
	if (strlen(m) >= SCAN_MASK_MAX)
		__builtin_trap();
	return 0;
}

static void on_bad(void *ctx, unsigned line, const char *why)
{
	if (!why || line == 0)
		__builtin_trap();
}

static int on_var(void *ctx, const char *file, unsigned line, const char *name, size_t nlen,
                  const char *val, size_t vlen, bool map_form)
{
	char m[SCAN_MASK_MAX];
	scan_judge(name, nlen, val, vlen, NULL);
	scan_mask(val, vlen, m);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	if (!init) {
		if (sodium_init() < 0)
			return 0;
		init = true;
	}
	const char *buf = (const char *)data;
	struct envfile_cb cb = {.var = on_env, .bad = on_bad};
	envfile_parse(buf, size, &cb);
	envfile_parse_dockerfile(buf, size, &cb);
	if (size <= 64 * 1024) {
		const char *why = NULL;
		scan_buffer(SCAN_FILE_COMPOSE, "f", buf, size, NULL, on_var, NULL, &why);
		scan_buffer(SCAN_FILE_YAML, "f", buf, size, NULL, on_var, NULL, &why);
	}
	return 0;
}
