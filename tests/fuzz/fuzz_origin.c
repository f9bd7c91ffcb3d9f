/* Fuzzes the origin records a cluster node reads from etcd (broker/cluster/cluster_log.c,
 * cluster_log_decode): JSON under CLUSTER_LOG_MAX with bounded, printable fields. What it hands
 * out must stay within those limits (it goes into audit details and logs as it is). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/cluster/cluster_log.h"
#include "fuzz.h"

static void check_text(const char *t, size_t cap)
{
	size_t n = strnlen(t, cap);
	if (n == 0 || n == cap)
		abort();
	for (size_t i = 0; i < n; i++)
		if (t[i] < 0x20 || t[i] > 0x7e || t[i] == '"' || t[i] == '\\')
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cluster_origin o;
	int r = cluster_log_decode((const char *)data, size, &o);
	if (r != 0 && r != -EBADMSG && r != -E2BIG)
		abort();
	if (r != 0)
		return 0;
	check_text(o.key, sizeof(o.key));
	check_text(o.node, sizeof(o.node));
	check_text(o.actor, sizeof(o.actor));
	check_text(o.action, sizeof(o.action));
	if (o.time < 0 || size > CLUSTER_LOG_MAX)
		abort();
	return 0;
}
