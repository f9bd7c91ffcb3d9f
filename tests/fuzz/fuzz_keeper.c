/* Fuzzes the keeper's decoders (broker/keeper/msg.c), which read what an untrusted daemon process
 * sends: keeper_msg_decode accepts only shapes that re-encode to the same bytes, and
 * keeper_state_parse (the held set read after an upgrade's exec) never reads past its input nor
 * passes on a record that does not decode. The first byte picks the decoder and the fd count. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/keeper/msg.h"
#include "fuzz.h"

static int state_cb(void *ud, const struct keeper_msg *m, const int *fds)
{
	size_t *n = ud;
	if (m->type != KEEPER_ITEM || m->nfds < 1 || m->nfds > KEEPER_FDS_MAX)
		abort();
	for (unsigned i = 0; i < m->nfds; i++)
		if (fds[i] < 0)
			abort();
	(*n)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	uint8_t sel = data[0];
	data++;
	size--;
	if (sel & 0x80) {
		size_t n = 0;
		int r = keeper_state_parse(data, size, state_cb, &n);
		if (r != 0 && r != -EPROTO)
			abort();
		return 0;
	}
	unsigned nfds = sel % 4;
	struct keeper_msg m;
	if (keeper_msg_decode(data, size, nfds, &m) != 0)
		return 0;
	if (m.nfds != nfds || m.id_len > KEEPER_ID_MAX || m.blob_len > KEEPER_BLOB_MAX ||
	    strlen(m.id) != m.id_len)
		abort();
	uint8_t buf[KEEPER_MSG_MAX];
	size_t len;
	if (keeper_msg_encode(&m, buf, sizeof(buf), &len) != 0 || len != size ||
	    memcmp(buf, data, size) != 0)
		abort();
	return 0;
}
