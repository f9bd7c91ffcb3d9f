/* bench_wlpath: the daemon's part of one workload-API read without the HTTP and identity layers,
 * for instruction counts under callgrind (which counts the same on a busy machine; the daemon
 * itself cannot run under valgrind 3.19, which lacks pidfd_send_signal). Issue #15.
 * usage: bench_wlpath DIR N   (DIR: a new state directory; N reads of a 64-byte secret)
 * Each iteration is what workload_read does after the identity and grant checks: store_get of
 * the current version, then the value dropped as the reply's free callback does. Run it twice
 * (N and 0) and divide the difference of the totals by N. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/store/store.h"

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	char state[512], key[512];
	snprintf(state, sizeof(state), "%s/state", argv[1]);
	snprintf(key, sizeof(key), "%s/key", argv[1]);
	struct store_opts o = {.state_dir = state, .key_file = key};
	if (store_init(&o) < 0)
		return 1;
	store *s = NULL;
	if (store_open(&s, &o) < 0)
		return 1;
	uint8_t v[64];
	memset(v, 'x', sizeof(v));
	if (store_put_ex(s, "bench/s64", v, sizeof(v), NULL, NULL, NULL) < 0)
		return 1;
	long n = atol(argv[2]);
	for (long i = 0; i < n; i++) {
		uint8_t *val = NULL;
		size_t len = 0;
		uint64_t ver = 0;
		if (store_get(s, "bench/s64", 0, &val, &len, &ver) < 0 || len != sizeof(v))
			return 1;
		store_value_free(val);
	}
	store_close(s);
	return 0;
}
