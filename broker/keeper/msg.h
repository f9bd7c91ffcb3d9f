/* keeper/msg: the messages between the keeper process and the daemon process it supervises (the
 * "worker"), and the encoding of the keeper's held set across an exec (upgrade). Pure: no I/O.
 *
 * One message is one SOCK_SEQPACKET datagram (keeper/chan.h): a fixed 20-byte header, then id_len
 * bytes of id, then blob_len bytes of blob; file descriptors travel beside it (SCM_RIGHTS) and only
 * their count is checked here. All integers are little-endian.
 *
 *   0  u32 magic KEEPER_MSG_MAGIC    8  u8  kind     10 u16 id_len     16 i32 result
 *   4  u16 version                   9  u8  0        12 u32 blob_len
 *   6  u16 type
 *
 * The keeper treats the worker as untrusted: keeper_msg_decode accepts exactly the shapes listed in
 * keeper_msg_type's comments and nothing else. Functions return 0 or a negative errno. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define KEEPER_MSG_MAGIC 0x314b4453u /* "SDK1" */
#define KEEPER_MSG_VERSION 1
#define KEEPER_MSG_HEADER 20
#define KEEPER_ID_MAX 128    /* id bytes: a container id, or a socket's name */
#define KEEPER_BLOB_MAX 4096 /* blob bytes: a FUSE connection's INIT record */
#define KEEPER_MSG_MAX (KEEPER_MSG_HEADER + KEEPER_ID_MAX + KEEPER_BLOB_MAX)
#define KEEPER_FDS_MAX 2 /* fds beside one message */

enum keeper_msg_type {
	/* worker -> keeper */
	KEEPER_HOLD = 1,  /* kind, id, blob (may be empty); 1..KEEPER_FDS_MAX fds: keep a dup */
	KEEPER_DROP = 2,  /* kind, id; no fd: close what is held under (kind, id) */
	KEEPER_FETCH = 3, /* nothing: answer with one KEEPER_ITEM per held entry, then KEEPER_END */
	KEEPER_READY = 4, /* result: the thread id of the worker's serving thread (0: the process
	                   * only): the worker serves (the keeper resets its crash backoff and
	                   * watches that thread from now on) */
	KEEPER_UPGRADE = 5, /* nothing: re-exec the keeper's binary, then a fresh worker */
	/* keeper -> worker */
	KEEPER_ITEM = 16,  /* as HOLD: a held entry, with its fds */
	KEEPER_END = 17,   /* nothing: the last ITEM was sent */
	KEEPER_RESULT = 18 /* result: the answer to UPGRADE (0 or -errno) */
};

enum keeper_kind {
	KEEPER_KIND_NONE = 0,
	KEEPER_KIND_FUSE = 1,   /* a container's FUSE connection; id = container id */
	KEEPER_KIND_LISTEN = 2, /* a listening socket; id = "admin" or "workload" */
};

struct keeper_msg {
	uint16_t type;
	uint8_t kind;
	char id[KEEPER_ID_MAX + 1]; /* NUL-terminated; "" when the type has none */
	size_t id_len;
	const uint8_t *blob; /* decode: points into the decoded buffer; encode: the caller's */
	size_t blob_len;
	int32_t result;
	unsigned nfds; /* fds that travel with the message */
};

/* Checks that buf[0..len) is one message of a known type and shape with nfds fds beside it, and
 * fills *out (out->blob points into buf). -EPROTO: bad magic or version, unknown type or kind,
 * a length that does not add up, an id that is not printable ASCII without space (0x21..0x7e,
 * 1..KEEPER_ID_MAX),
 * fields a type does not carry not zero, or a wrong number of fds. *out is unspecified then. */
int keeper_msg_decode(const uint8_t *buf, size_t len, unsigned nfds, struct keeper_msg *out);
/* Encodes m into buf (cap bytes) and sets *len. -EINVAL: a field out of its limits; -ENOSPC: cap
 * too small. The result always decodes back to m (keeper_msg_decode). */
int keeper_msg_encode(const struct keeper_msg *m, uint8_t *buf, size_t cap, size_t *len);
/* True when id[0..len) is a valid id (the rule above). */
int keeper_msg_id_ok(const char *id, size_t len);

/* The held set across an exec: a sequence of records, each a u32 message length, the encoded
 * KEEPER_ITEM, then its nfds fd numbers as i32. KEEPER_STATE_MAX bounds the whole. */
#define KEEPER_STATE_MAX (1024 * 1024)
#define KEEPER_STATE_ITEMS_MAX 8192
/* Calls fn for each record of buf[0..len) in order, with the decoded item and its fd numbers
 * (not checked to be open: the caller does). Stops at the first non-zero return of fn and returns
 * it. -EPROTO: a record that does not decode, a truncated one, more than KEEPER_STATE_ITEMS_MAX,
 * or len > KEEPER_STATE_MAX; records before it were already passed to fn. */
int keeper_state_parse(const uint8_t *buf, size_t len,
                       int (*fn)(void *ud, const struct keeper_msg *m, const int *fds), void *ud);
/* Appends one record to buf (cap bytes, *len used so far). -ENOSPC when it does not fit. */
int keeper_state_append(uint8_t *buf, size_t cap, size_t *len, const struct keeper_msg *m,
                        const int *fds);
