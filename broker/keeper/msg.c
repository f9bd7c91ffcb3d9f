/* msg.c: the keeper's message codec (see msg.h). */
#include "broker/keeper/msg.h"

#include <errno.h>
#include <string.h>

static uint16_t msg_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t msg_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void msg_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void msg_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int keeper_msg_id_ok(const char *id, size_t len)
{
	if (len == 0 || len > KEEPER_ID_MAX)
		return 0;
	/* Container ids as the registry takes them: printable ASCII, no space. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)id[i] <= ' ' || (unsigned char)id[i] >= 0x7f)
			return 0;
	return 1;
}

/* What a type carries: an id and kind (and a blob), fds (min..max), a result. */
struct msg_shape {
	int has_id, has_blob, has_result;
	int result_positive; /* result is >= 0 (READY: a thread id), else <= 0 (an errno) */
	unsigned fds_min, fds_max;
};

static int msg_shape(uint16_t type, struct msg_shape *sh)
{
	memset(sh, 0, sizeof(*sh));
	switch (type) {
	case KEEPER_HOLD:
	case KEEPER_ITEM:
		sh->has_id = sh->has_blob = 1;
		sh->fds_min = 1;
		sh->fds_max = KEEPER_FDS_MAX;
		return 0;
	case KEEPER_DROP:
		sh->has_id = 1;
		return 0;
	case KEEPER_READY:
		sh->has_result = sh->result_positive = 1;
		return 0;
	case KEEPER_FETCH:
	case KEEPER_UPGRADE:
	case KEEPER_END:
		return 0;
	case KEEPER_RESULT:
		sh->has_result = 1;
		return 0;
	default:
		return -EPROTO;
	}
}

static int msg_check(const struct keeper_msg *m, const struct msg_shape *sh)
{
	if (sh->has_id) {
		if (m->kind != KEEPER_KIND_FUSE && m->kind != KEEPER_KIND_LISTEN)
			return -EPROTO;
		if (!keeper_msg_id_ok(m->id, m->id_len))
			return -EPROTO;
		/* A listening socket is one fd and carries nothing else. */
		if (m->kind == KEEPER_KIND_LISTEN && (m->blob_len || m->nfds > 1))
			return -EPROTO;
	} else if (m->kind || m->id_len) {
		return -EPROTO;
	}
	if (!sh->has_blob && m->blob_len)
		return -EPROTO;
	if (m->blob_len > KEEPER_BLOB_MAX)
		return -EPROTO;
	if (!sh->has_result && m->result)
		return -EPROTO;
	if (sh->has_result && (sh->result_positive ? m->result < 0 : m->result > 0))
		return -EPROTO;
	if (m->nfds < sh->fds_min || m->nfds > sh->fds_max)
		return -EPROTO;
	return 0;
}

int keeper_msg_decode(const uint8_t *buf, size_t len, unsigned nfds, struct keeper_msg *out)
{
	memset(out, 0, sizeof(*out));
	if (!buf || len < KEEPER_MSG_HEADER || len > KEEPER_MSG_MAX)
		return -EPROTO;
	if (msg_get32(buf) != KEEPER_MSG_MAGIC || msg_get16(buf + 4) != KEEPER_MSG_VERSION)
		return -EPROTO;
	struct msg_shape sh;
	out->type = msg_get16(buf + 6);
	if (msg_shape(out->type, &sh) < 0 || buf[9] != 0)
		return -EPROTO;
	out->kind = buf[8];
	size_t id_len = msg_get16(buf + 10);
	size_t blob_len = msg_get32(buf + 12);
	out->result = (int32_t)msg_get32(buf + 16);
	if (id_len > KEEPER_ID_MAX || blob_len > KEEPER_BLOB_MAX ||
	    KEEPER_MSG_HEADER + id_len + blob_len != len)
		return -EPROTO;
	memcpy(out->id, buf + KEEPER_MSG_HEADER, id_len);
	out->id[id_len] = '\0';
	out->id_len = id_len;
	out->blob = blob_len ? buf + KEEPER_MSG_HEADER + id_len : NULL;
	out->blob_len = blob_len;
	out->nfds = nfds;
	return msg_check(out, &sh);
}

int keeper_msg_encode(const struct keeper_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
	struct msg_shape sh;
	if (msg_shape(m->type, &sh) < 0 || m->id_len != strnlen(m->id, sizeof(m->id)) ||
	    (m->blob_len && !m->blob) || msg_check(m, &sh) < 0)
		return -EINVAL;
	size_t n = KEEPER_MSG_HEADER + m->id_len + m->blob_len;
	if (n > cap)
		return -ENOSPC;
	msg_put32(buf, KEEPER_MSG_MAGIC);
	msg_put16(buf + 4, KEEPER_MSG_VERSION);
	msg_put16(buf + 6, m->type);
	buf[8] = m->kind;
	buf[9] = 0;
	msg_put16(buf + 10, (uint16_t)m->id_len);
	msg_put32(buf + 12, (uint32_t)m->blob_len);
	msg_put32(buf + 16, (uint32_t)m->result);
	memcpy(buf + KEEPER_MSG_HEADER, m->id, m->id_len);
	if (m->blob_len)
		memcpy(buf + KEEPER_MSG_HEADER + m->id_len, m->blob, m->blob_len);
	*len = n;
	return 0;
}

int keeper_state_parse(const uint8_t *buf, size_t len,
                       int (*fn)(void *ud, const struct keeper_msg *m, const int *fds), void *ud)
{
	if (len > KEEPER_STATE_MAX)
		return -EPROTO;
	size_t off = 0, items = 0;
	while (off < len) {
		if (++items > KEEPER_STATE_ITEMS_MAX || len - off < 4)
			return -EPROTO;
		size_t ml = msg_get32(buf + off);
		off += 4;
		if (ml < KEEPER_MSG_HEADER || ml > KEEPER_MSG_MAX || len - off < ml)
			return -EPROTO;
		/* The fd count is implied by the kind: read it from the header, then check. */
		const uint8_t *mb = buf + off;
		unsigned nfds = 1;
		if (mb[8] == KEEPER_KIND_FUSE) {
			if (len - off - ml < 4)
				return -EPROTO;
			nfds = msg_get32(buf + off + ml);
			if (nfds < 1 || nfds > KEEPER_FDS_MAX)
				return -EPROTO;
		}
		struct keeper_msg m;
		if (keeper_msg_decode(mb, ml, nfds, &m) < 0 || m.type != KEEPER_ITEM)
			return -EPROTO;
		off += ml;
		if (m.kind == KEEPER_KIND_FUSE)
			off += 4;
		int fds[KEEPER_FDS_MAX];
		if ((len - off) / 4 < nfds)
			return -EPROTO;
		for (unsigned i = 0; i < nfds; i++, off += 4) {
			int32_t v = (int32_t)msg_get32(buf + off);
			if (v < 0)
				return -EPROTO;
			fds[i] = v;
		}
		int r = fn(ud, &m, fds);
		if (r)
			return r;
	}
	return 0;
}

int keeper_state_append(uint8_t *buf, size_t cap, size_t *len, const struct keeper_msg *m,
                        const int *fds)
{
	if (m->type != KEEPER_ITEM || *len > cap)
		return -EINVAL;
	uint8_t tmp[KEEPER_MSG_MAX];
	size_t ml;
	int r = keeper_msg_encode(m, tmp, sizeof(tmp), &ml);
	if (r < 0)
		return r;
	size_t extra = m->kind == KEEPER_KIND_FUSE ? 4 : 0;
	size_t need = 4 + ml + extra + 4 * (size_t)m->nfds;
	if (cap - *len < need || *len + need > KEEPER_STATE_MAX)
		return -ENOSPC;
	uint8_t *p = buf + *len;
	msg_put32(p, (uint32_t)ml);
	memcpy(p + 4, tmp, ml);
	p += 4 + ml;
	if (extra) {
		msg_put32(p, m->nfds);
		p += 4;
	}
	for (unsigned i = 0; i < m->nfds; i++, p += 4) {
		if (fds[i] < 0)
			return -EINVAL;
		msg_put32(p, (uint32_t)fds[i]);
	}
	*len += need;
	return 0;
}
