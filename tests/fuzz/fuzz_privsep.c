/* Fuzzes the privsep decoder (broker/privsep/msg.c), which reads what the untrusted server
 * process sends the daemon process: privsep_msg_decode accepts only shapes that re-encode to the
 * same bytes, within the limits, with a handle exactly where a connection is named. The first byte
 * picks the fd count and the REPLY body limit. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "broker/privsep/msg.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	unsigned nfds = sel % 3;
	size_t body_max = (sel >> 2) * 16;
	struct privsep_msg m;
	if (privsep_msg_decode(data, size, nfds, body_max, &m) != 0)
		return 0;
	if (m.nfds != nfds ||
	    m.body_len > (m.type == PRIVSEP_REPLY ? body_max : PRIVSEP_STATS_N * 8))
		abort();
	if (m.arg_len > PRIVSEP_PATH_MAX || memchr(m.arg, 0, m.arg_len))
		abort();
	if ((m.type == PRIVSEP_READ || m.type == PRIVSEP_TEMPLATE_READ) &&
	    m.arg_len > PRIVSEP_NAME_MAX)
		abort();
	if (privsep_has_fd(m.type) != (nfds == 1))
		abort();
	/* a handle names a connection in a request (but CONNKEY) and a CLOSE, nowhere else */
	bool named =
	    m.type == PRIVSEP_CLOSE || (privsep_is_request(m.type) && m.type != PRIVSEP_CONNKEY);
	if (named != (m.handle != 0) || (m.type != PRIVSEP_REPLY && m.version != 0))
		abort();
	uint8_t *buf = malloc(PRIVSEP_HEADER + PRIVSEP_PATH_MAX + m.body_len + 1);
	size_t len;
	if (!buf)
		return 0;
	if (privsep_msg_encode_head(&m, buf, PRIVSEP_HEADER + PRIVSEP_PATH_MAX, &len) != 0)
		abort();
	if (m.body_len)
		memcpy(buf + len, m.body, m.body_len);
	if (len + m.body_len != size || memcmp(buf, data, size) != 0)
		abort();
	free(buf);
	return 0;
}
