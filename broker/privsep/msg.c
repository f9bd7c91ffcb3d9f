/* msg.c: the privilege-separation message codec (see msg.h). */
#include "broker/privsep/msg.h"

#include <errno.h>
#include <string.h>

static uint16_t ps_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t ps_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ps_get64(const uint8_t *p)
{
	return (uint64_t)ps_get32(p) | (uint64_t)ps_get32(p + 4) << 32;
}

static void ps_put(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

bool privsep_is_request(uint16_t type)
{
	return type >= PRIVSEP_WHOAMI && type <= PRIVSEP_CONNKEY;
}

bool privsep_has_fd(uint16_t type)
{
	return type == PRIVSEP_CONNKEY;
}

const char *privsep_type_name(uint16_t type)
{
	static const char *const names[] = {[PRIVSEP_WHOAMI] = "WHOAMI",
	                                    [PRIVSEP_LIST] = "LIST",
	                                    [PRIVSEP_READ] = "READ",
	                                    [PRIVSEP_TEMPLATES] = "TEMPLATES",
	                                    [PRIVSEP_TEMPLATE_READ] = "TEMPLATE_READ",
	                                    [PRIVSEP_MOUNT] = "MOUNT",
	                                    [PRIVSEP_HEALTH] = "HEALTH",
	                                    [PRIVSEP_CONNKEY] = "CONNKEY",
	                                    [PRIVSEP_STATS] = "STATS",
	                                    [PRIVSEP_CLOSE] = "CLOSE"};
	if (type == PRIVSEP_REPLY)
		return "REPLY";
	if (type < sizeof(names) / sizeof(names[0]) && names[type])
		return names[type];
	return "?";
}

/* The arg a type may carry (max bytes; 0: none) and whether it must be non-empty, its body,
 * its fd count and whether it names a connection (handle not 0; else the handle is 0). */
static int ps_shape(uint16_t type, size_t *arg_max, bool *arg_min1, size_t *body_fixed,
                    bool *body_any, unsigned *nfds, bool *handle)
{
	*arg_max = 0;
	*arg_min1 = false;
	*body_fixed = 0;
	*body_any = false;
	*nfds = 0;
	*handle = false;
	switch (type) {
	case PRIVSEP_READ:
	case PRIVSEP_TEMPLATE_READ:
		*arg_max = PRIVSEP_NAME_MAX;
		*handle = true;
		return 0;
	case PRIVSEP_MOUNT:
		*arg_max = PRIVSEP_PATH_MAX;
		*handle = true;
		return 0;
	case PRIVSEP_WHOAMI:
	case PRIVSEP_LIST:
	case PRIVSEP_TEMPLATES:
	case PRIVSEP_HEALTH:
	case PRIVSEP_CLOSE:
		*handle = true;
		return 0;
	case PRIVSEP_CONNKEY:
		*nfds = 1;
		return 0;
	case PRIVSEP_STATS:
		*body_fixed = PRIVSEP_STATS_N * 8;
		return 0;
	case PRIVSEP_REPLY:
		*arg_max = PRIVSEP_CTYPE_MAX;
		*arg_min1 = true;
		*body_any = true;
		return 0;
	default:
		return -EPROTO;
	}
}

/* The common field rules of decode and encode. */
static int ps_check(const struct privsep_msg *m, size_t body_max)
{
	size_t arg_max, body_fixed;
	bool arg_min1, body_any, handle;
	unsigned nfds;
	if (ps_shape(m->type, &arg_max, &arg_min1, &body_fixed, &body_any, &nfds, &handle) < 0)
		return -EPROTO;
	if (m->nfds != nfds || m->arg_len > arg_max || (arg_min1 && m->arg_len == 0))
		return -EPROTO;
	if (handle ? m->handle == 0 : m->handle != 0)
		return -EPROTO;
	for (size_t i = 0; i < m->arg_len; i++) {
		unsigned char c = (unsigned char)m->arg[i];
		/* names and paths: no NUL or control byte; a content type: printable ASCII */
		if (c < 0x20 || c == 0x7f || (m->type == PRIVSEP_REPLY && c > 0x7e))
			return -EPROTO;
	}
	if (body_any ? m->body_len > body_max : m->body_len != body_fixed)
		return -EPROTO;
	if (m->type == PRIVSEP_REPLY) {
		if (m->status < 100 || m->status > 599)
			return -EPROTO;
	} else if (m->status != 0 || m->version != 0) {
		return -EPROTO;
	}
	if ((m->type == PRIVSEP_STATS || m->type == PRIVSEP_CLOSE) && m->id != 0)
		return -EPROTO;
	return 0;
}

int privsep_msg_decode(const uint8_t *buf, size_t len, unsigned nfds, size_t body_max,
                       struct privsep_msg *out)
{
	if (body_max > PRIVSEP_BODY_MAX)
		body_max = PRIVSEP_BODY_MAX;
	if (len < PRIVSEP_HEADER || ps_get32(buf) != PRIVSEP_MAGIC ||
	    ps_get16(buf + 4) != PRIVSEP_VERSION)
		return -EPROTO;
	memset(out, 0, sizeof(*out));
	out->type = ps_get16(buf + 6);
	out->id = ps_get32(buf + 8);
	out->status = ps_get16(buf + 12);
	out->arg_len = ps_get16(buf + 14);
	if (out->type == PRIVSEP_REPLY)
		out->version = ps_get64(buf + 16);
	else
		out->handle = ps_get64(buf + 16);
	out->body_len = ps_get32(buf + 24);
	out->nfds = nfds;
	/* the lengths must add up to the datagram exactly (no overflow: each is < 2^32) */
	if ((uint64_t)PRIVSEP_HEADER + out->arg_len + out->body_len != (uint64_t)len)
		return -EPROTO;
	out->arg = (const char *)buf + PRIVSEP_HEADER;
	out->body = buf + PRIVSEP_HEADER + out->arg_len;
	return ps_check(out, body_max);
}

int privsep_msg_encode_head(const struct privsep_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
	if (ps_check(m, PRIVSEP_BODY_MAX) < 0)
		return -EINVAL;
	if (cap < PRIVSEP_HEADER + m->arg_len)
		return -ENOSPC;
	ps_put(buf, PRIVSEP_MAGIC, 4);
	ps_put(buf + 4, PRIVSEP_VERSION, 2);
	ps_put(buf + 6, m->type, 2);
	ps_put(buf + 8, m->id, 4);
	ps_put(buf + 12, m->status, 2);
	ps_put(buf + 14, m->arg_len, 2);
	ps_put(buf + 16, m->type == PRIVSEP_REPLY ? m->version : m->handle, 8);
	ps_put(buf + 24, m->body_len, 4);
	if (m->arg_len)
		memcpy(buf + PRIVSEP_HEADER, m->arg, m->arg_len);
	*len = PRIVSEP_HEADER + m->arg_len;
	return 0;
}
