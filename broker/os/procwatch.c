#include "broker/os/procwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/limits.h"

/* Linux 6.6 (Debian 12's headers predate it): a LISTEN that says which events it wants. Only
 * kernels that count listeners per socket understand it; older ones ignore it, which we read as
 * "no connector" (one careless IGNORE from another process could silence them). */
struct procwatch_input {
	uint32_t mcast_op;
	uint32_t event_type;
};
#define PROCWATCH_EVENT_ALL 0xffffffffu

#define PROCWATCH_IDX_BITS 20 /* a token is (serial << 20) | slot: max 2^20 entries */
#define PROCWATCH_IDX_MASK ((1u << PROCWATCH_IDX_BITS) - 1)
#define PROCWATCH_RCVBUF (4 << 20)        /* connector socket buffer: bursts of forks stay queued */
#define PROCWATCH_BATCH 32                /* datagrams per recvmmsg */
#define PROCWATCH_DGRAM PROCWATCH_MSG_MAX /* one connector message is under 100 bytes */
#define PROCWATCH_ACK_WAIT_MS 500 /* the answer to LISTEN (normally there before send returns) */

/* ---- the pure core ---- */

struct procwatch_ent {
	pid_t pid; /* 0: free slot */
	int handle;
	uint64_t token;
	int prev, next; /* LRU list (most recent at head), or the free list through next */
	bool has_exe;
	char exe[PROCWATCH_EXE_MAX];
};

struct procwatch_tab {
	struct procwatch_ent *ents;
	size_t max, count;
	int *hash; /* open addressing by pid: slot index or -1; nhash = power of 2 >= 2 max */
	size_t nhash;
	int head, tail, free;
	uint64_t serial;
	/* connector sequence numbers, per CPU */
	uint32_t last_seq[PROCWATCH_CPUS_MAX];
	uint8_t seen[PROCWATCH_CPUS_MAX];
};

static size_t procwatch_hash_of(const procwatch_tab *t, pid_t pid)
{
	return ((uint32_t)pid * 2654435761u) & (t->nhash - 1);
}

/* The hash position holding pid, or of the empty place where it would go. */
static size_t procwatch_hash_pos(const procwatch_tab *t, pid_t pid)
{
	size_t h = procwatch_hash_of(t, pid);
	while (t->hash[h] >= 0 && t->ents[t->hash[h]].pid != pid)
		h = (h + 1) & (t->nhash - 1);
	return h;
}

static void procwatch_hash_del(procwatch_tab *t, pid_t pid)
{
	size_t h = procwatch_hash_pos(t, pid);
	if (t->hash[h] < 0)
		return;
	/* backward-shift deletion keeps every probe chain unbroken */
	size_t hole = h;
	for (size_t j = (h + 1) & (t->nhash - 1); t->hash[j] >= 0; j = (j + 1) & (t->nhash - 1)) {
		size_t home = procwatch_hash_of(t, t->ents[t->hash[j]].pid);
		/* j may fill the hole unless its home lies cyclically in (hole, j] */
		bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!stays) {
			t->hash[hole] = t->hash[j];
			hole = j;
		}
	}
	t->hash[hole] = -1;
}

static void procwatch_lru_unlink(procwatch_tab *t, int i)
{
	struct procwatch_ent *e = &t->ents[i];
	if (e->prev >= 0)
		t->ents[e->prev].next = e->next;
	else
		t->head = e->next;
	if (e->next >= 0)
		t->ents[e->next].prev = e->prev;
	else
		t->tail = e->prev;
}

static void procwatch_lru_push(procwatch_tab *t, int i)
{
	struct procwatch_ent *e = &t->ents[i];
	e->prev = -1;
	e->next = t->head;
	if (t->head >= 0)
		t->ents[t->head].prev = i;
	t->head = i;
	if (t->tail < 0)
		t->tail = i;
}

/* Frees slot i; returns its handle. */
static int procwatch_slot_drop(procwatch_tab *t, int i)
{
	struct procwatch_ent *e = &t->ents[i];
	int handle = e->handle;
	procwatch_hash_del(t, e->pid);
	procwatch_lru_unlink(t, i);
	e->pid = 0;
	e->handle = -1;
	e->token = 0;
	e->has_exe = false;
	e->next = t->free;
	t->free = i;
	t->count--;
	return handle;
}

static int procwatch_find(const procwatch_tab *t, pid_t pid)
{
	if (pid <= 0)
		return -1;
	return t->hash[procwatch_hash_pos(t, pid)];
}

int procwatch_tab_new(procwatch_tab **out, size_t max)
{
	if (!out || max == 0 || max > PROCWATCH_IDX_MASK)
		return -EINVAL;
	procwatch_tab *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->max = max;
	t->nhash = 1;
	while (t->nhash < 2 * max)
		t->nhash <<= 1;
	t->ents = calloc(max, sizeof(*t->ents));
	t->hash = malloc(t->nhash * sizeof(*t->hash));
	if (!t->ents || !t->hash) {
		procwatch_tab_free(t);
		return -ENOMEM;
	}
	procwatch_tab_clear(t);
	*out = t;
	return 0;
}

void procwatch_tab_free(procwatch_tab *t)
{
	if (!t)
		return;
	free(t->ents);
	free(t->hash);
	free(t);
}

void procwatch_tab_clear(procwatch_tab *t)
{
	for (size_t i = 0; i < t->nhash; i++)
		t->hash[i] = -1;
	for (size_t i = 0; i < t->max; i++)
		t->ents[i] = (struct procwatch_ent){
		    .handle = -1, .prev = -1, .next = i + 1 < t->max ? (int)i + 1 : -1};
	t->free = 0;
	t->head = t->tail = -1;
	t->count = 0;
}

uint64_t procwatch_tab_add(procwatch_tab *t, pid_t pid, int handle, int *dropped)
{
	*dropped = -1;
	if (pid <= 0 || handle < 0)
		return 0;
	int i = procwatch_find(t, pid);
	if (i >= 0)
		*dropped = procwatch_slot_drop(t, i);
	else if (t->free < 0)
		*dropped = procwatch_slot_drop(t, t->tail);
	i = t->free;
	struct procwatch_ent *e = &t->ents[i];
	t->free = e->next;
	*e = (struct procwatch_ent){.pid = pid,
	                            .handle = handle,
	                            .token = (++t->serial << PROCWATCH_IDX_BITS) | (uint64_t)i};
	t->hash[procwatch_hash_pos(t, pid)] = i;
	procwatch_lru_push(t, i);
	t->count++;
	return e->token;
}

uint64_t procwatch_tab_token(procwatch_tab *t, pid_t pid)
{
	int i = procwatch_find(t, pid);
	if (i < 0)
		return 0;
	if (t->head != i) {
		procwatch_lru_unlink(t, i);
		procwatch_lru_push(t, i);
	}
	return t->ents[i].token;
}

int procwatch_tab_remove(procwatch_tab *t, uint64_t token)
{
	size_t i = (size_t)(token & PROCWATCH_IDX_MASK);
	if (token == 0 || i >= t->max || t->ents[i].pid == 0 || t->ents[i].token != token)
		return -1;
	return procwatch_slot_drop(t, (int)i);
}

int procwatch_tab_handle_at(const procwatch_tab *t, size_t i)
{
	for (size_t k = 0; k < t->max; k++)
		if (t->ents[k].pid != 0 && i-- == 0)
			return t->ents[k].handle;
	return -1;
}

size_t procwatch_tab_count(const procwatch_tab *t)
{
	return t->count;
}

const char *procwatch_tab_exe(const procwatch_tab *t, pid_t pid)
{
	int i = procwatch_find(t, pid);
	return i >= 0 && t->ents[i].has_exe ? t->ents[i].exe : NULL;
}

int procwatch_tab_set_exe(procwatch_tab *t, pid_t pid, const char *exe)
{
	int i = procwatch_find(t, pid);
	if (i < 0)
		return -ENOENT;
	snprintf(t->ents[i].exe, sizeof(t->ents[i].exe), "%s", exe);
	t->ents[i].has_exe = true;
	return 0;
}

void procwatch_tab_forget_exes(procwatch_tab *t)
{
	for (size_t i = 0; i < t->max; i++)
		t->ents[i].has_exe = false;
}

/* Follows cpu's sequence numbers (the kernel numbers every message per CPU, under a lock held
 * while it is delivered, so one CPU's arrive in order). 0, or PROCWATCH_FED_FIRST / _LOST after
 * forgetting every exe: the first message from a CPU, a CPU beyond PROCWATCH_CPUS_MAX, a gap. */
static int procwatch_seq(procwatch_tab *t, uint32_t cpu, uint32_t seq)
{
	if (cpu >= PROCWATCH_CPUS_MAX) {
		procwatch_tab_forget_exes(t);
		return PROCWATCH_FED_LOST;
	}
	int r = !t->seen[cpu]                 ? PROCWATCH_FED_FIRST
	        : seq != t->last_seq[cpu] + 1 ? PROCWATCH_FED_LOST
	                                      : 0;
	t->seen[cpu] = 1;
	t->last_seq[cpu] = seq;
	if (r)
		procwatch_tab_forget_exes(t);
	return r;
}

/* The smallest whole message: nlmsghdr, cn_msg, then a proc_event, packed as the kernel sends it.
 */
#define PROCWATCH_MSG_MIN NLMSG_LENGTH(sizeof(struct cn_msg) + sizeof(struct proc_event))
_Static_assert(PROCWATCH_MSG_MIN <= PROCWATCH_MSG_MAX, "a message fits a datagram buffer");

int procwatch_parse(const void *buf, size_t len, struct procwatch_msg *out)
{
	if (!buf || len < PROCWATCH_MSG_MIN || len > PROCWATCH_MSG_MAX)
		return -EBADMSG;
	/* Copies keep the parsing independent of the buffer's alignment. */
	struct nlmsghdr nh;
	struct cn_msg cm;
	struct proc_event ev;
	memcpy(&nh, buf, sizeof(nh));
	memcpy(&cm, (const char *)buf + NLMSG_HDRLEN, sizeof(cm));
	memcpy(&ev, (const char *)buf + NLMSG_HDRLEN + sizeof(cm), sizeof(ev));
	if (nh.nlmsg_len < PROCWATCH_MSG_MIN || nh.nlmsg_len > len || cm.id.idx != CN_IDX_PROC ||
	    cm.id.val != CN_VAL_PROC || cm.len < sizeof(ev))
		return -EBADMSG;
	*out = (struct procwatch_msg){.cpu = ev.cpu, .seq = cm.seq, .ack = cm.ack, .what = ev.what};
	if (ev.what == PROC_EVENT_EXEC)
		out->tgid = (int32_t)ev.event_data.exec.process_tgid;
	else if (ev.what == PROC_EVENT_NONE)
		out->err = (int32_t)ev.event_data.ack.err;
	return 0;
}

int procwatch_tab_feed(procwatch_tab *t, const void *buf, size_t len, uint32_t cookie, int *ack_err)
{
	struct procwatch_msg m;
	if (procwatch_parse(buf, len, &m) < 0) {
		procwatch_tab_forget_exes(t);
		return PROCWATCH_FED_LOST;
	}
	int fed = procwatch_seq(t, m.cpu, m.seq);
	if (m.what == PROC_EVENT_EXEC) {
		int i = procwatch_find(t, (pid_t)m.tgid);
		if (i >= 0 && t->ents[i].has_exe) {
			t->ents[i].has_exe = false;
			fed |= PROCWATCH_FED_EXEC;
		}
	} else if (m.what == PROC_EVENT_NONE && m.ack == cookie + 1) {
		fed |= PROCWATCH_FED_ACK;
		if (ack_err)
			*ack_err = (int)m.err;
	}
	return fed;
}

/* ---- the watcher ---- */

struct procwatch {
	procwatch_tab *tab;
	int epfd;
	int nl;          /* connector socket, -1 when exes are not cached */
	uint32_t cookie; /* our LISTEN's ack number */
	struct procwatch_stats st;
	char exe[PROCWATCH_EXE_MAX];
	char bufs[PROCWATCH_BATCH][PROCWATCH_DGRAM] __attribute__((aligned(8)));
};

#define PROCWATCH_NL_TOKEN 0 /* epoll data of the connector socket (tokens are > 0) */

static void procwatch_close_handle(procwatch *pw, int fd)
{
	if (fd < 0)
		return;
	/* Explicitly: a forked child (nsmount) may still share the file, keeping it in the set. */
	(void)epoll_ctl(pw->epfd, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
}

static void procwatch_forget_all(procwatch *pw)
{
	size_t n = procwatch_tab_count(pw->tab);
	for (size_t i = 0; i < n; i++)
		procwatch_close_handle(pw, procwatch_tab_handle_at(pw->tab, i));
	procwatch_tab_clear(pw->tab);
}

/* Sends PROC_CN_MCAST_LISTEN or _IGNORE (every event type) on connector socket fd. */
static int procwatch_mcast(int fd, uint32_t op, uint32_t cookie)
{
	/* nlmsghdr, cn_msg (whose data[] is flexible: not a struct member), then the input */
	union {
		uint8_t b[NLMSG_HDRLEN + sizeof(struct cn_msg) + sizeof(struct procwatch_input)];
		struct nlmsghdr align;
	} req;
	_Static_assert(sizeof(struct nlmsghdr) == NLMSG_HDRLEN, "nlmsghdr is aligned");
	memset(&req, 0, sizeof(req));
	struct nlmsghdr nh = {.nlmsg_len = sizeof(req.b), .nlmsg_type = NLMSG_DONE, .nlmsg_pid = 0};
	struct cn_msg cm = {.id = {.idx = CN_IDX_PROC, .val = CN_VAL_PROC},
	                    .ack = cookie,
	                    .len = sizeof(struct procwatch_input)};
	struct procwatch_input in = {.mcast_op = op, .event_type = PROCWATCH_EVENT_ALL};
	memcpy(req.b, &nh, sizeof(nh));
	memcpy(req.b + NLMSG_HDRLEN, &cm, sizeof(cm));
	memcpy(req.b + NLMSG_HDRLEN + sizeof(cm), &in, sizeof(in));
	struct sockaddr_nl to = {.nl_family = AF_NETLINK};
	if (sendto(fd, req.b, sizeof(req.b), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
		return -errno;
	return 0;
}

static void procwatch_connector_off(procwatch *pw)
{
	if (pw->nl < 0)
		return;
	/* The kernel counts listeners per socket and does not uncount a closed one: say so, or
	 * every process event keeps being built for nobody. */
	(void)procwatch_mcast(pw->nl, PROC_CN_MCAST_IGNORE, pw->cookie);
	(void)epoll_ctl(pw->epfd, EPOLL_CTL_DEL, pw->nl, NULL);
	close(pw->nl);
	pw->nl = -1;
	procwatch_tab_forget_exes(pw->tab);
}

/* Receives and applies every queued connector message. 0 when the queue is empty; an ENOBUFS
 * (messages dropped) forgets every exe and goes on. *ack / *ack_err as procwatch_tab_feed. */
static int procwatch_drain(procwatch *pw, bool *ack, int *ack_err)
{
	char(*bufs)[PROCWATCH_DGRAM] = pw->bufs;
	struct mmsghdr mm[PROCWATCH_BATCH];
	struct iovec iov[PROCWATCH_BATCH];
	struct sockaddr_nl from[PROCWATCH_BATCH];
	for (;;) {
		for (size_t i = 0; i < PROCWATCH_BATCH; i++) {
			iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = PROCWATCH_DGRAM};
			mm[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &from[i],
			                                     .msg_namelen = sizeof(from[i]),
			                                     .msg_iov = &iov[i],
			                                     .msg_iovlen = 1}};
		}
		int n = recvmmsg(pw->nl, mm, PROCWATCH_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EAGAIN)
				return 0;
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				/* The kernel dropped messages for us (it says so once, then drops
				 * silently until the queue is empty, which this drain reaches
				 * before returning). */
				procwatch_tab_forget_exes(pw->tab);
				pw->st.losses++;
				continue;
			}
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			const struct msghdr *h = &mm[i].msg_hdr;
			if (h->msg_namelen < sizeof(struct sockaddr_nl) || from[i].nl_pid != 0)
				continue; /* not from the kernel */
			int fed = PROCWATCH_FED_LOST;
			int err = 0;
			if (!(h->msg_flags & MSG_TRUNC))
				fed = procwatch_tab_feed(pw->tab, bufs[i], mm[i].msg_len,
				                         pw->cookie, &err);
			else
				procwatch_tab_forget_exes(pw->tab);
			if (fed & PROCWATCH_FED_LOST)
				pw->st.losses++;
			if (fed & PROCWATCH_FED_EXEC)
				pw->st.execs++;
			if ((fed & PROCWATCH_FED_ACK) && ack) {
				*ack = true;
				*ack_err = err;
			}
		}
	}
}

/* Opens the connector socket and subscribes to every process event. */
static int procwatch_connector_on(procwatch *pw)
{
	_cleanup_close_ int fd =
	    socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_CONNECTOR);
	if (fd < 0)
		return -errno;
	/* With this flag, a message our full queue had to drop makes the kernel's broadcast fail
	 * with ENOBUFS. Without it, a broadcast that reached no socket returns ESRCH, which some
	 * kernels' cn_proc takes for "nobody listens": it would stop sending events to everyone. */
	int one = 1;
	if (setsockopt(fd, SOL_NETLINK, NETLINK_BROADCAST_ERROR, &one, sizeof(one)) < 0)
		return -errno;
	int rcvbuf = PROCWATCH_RCVBUF;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (getrandom(&pw->cookie, sizeof(pw->cookie), GRND_NONBLOCK) != sizeof(pw->cookie))
		pw->cookie = (uint32_t)getpid() ^ (uint32_t)time(NULL);
	int r = procwatch_mcast(fd, PROC_CN_MCAST_LISTEN, pw->cookie);
	if (r < 0)
		return r;
	/* The kernel answers from inside sendto; wait a little in case it ever does not. A kernel
	 * that ignores the request (older than 6.6, or we are not in the initial namespaces) never
	 * answers. */
	pw->nl = fd;
	bool ack = false;
	int ack_err = 0;
	for (int waited = 0; !ack && waited <= PROCWATCH_ACK_WAIT_MS; waited += 50) {
		r = procwatch_drain(pw, &ack, &ack_err);
		if (r < 0 || ack)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		(void)poll(&p, 1, 50);
	}
	pw->nl = -1;
	if (r < 0)
		return r;
	if (!ack)
		return -ETIMEDOUT;
	if (ack_err)
		return -ack_err;
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = PROCWATCH_NL_TOKEN};
	if (epoll_ctl(pw->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
		r = -errno;
		(void)procwatch_mcast(fd, PROC_CN_MCAST_IGNORE, pw->cookie);
		return r;
	}
	pw->nl = TAKE_FD(fd);
	return 0;
}

int procwatch_new(procwatch **out, int *connector_err)
{
	procwatch *pw = calloc(1, sizeof(*pw));
	if (!pw)
		return -ENOMEM;
	pw->nl = -1;
	int r = procwatch_tab_new(&pw->tab, SECRETD_PROCWATCH_MAX);
	if (r < 0) {
		free(pw);
		return r;
	}
	pw->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (pw->epfd < 0) {
		r = -errno;
		procwatch_tab_free(pw->tab);
		free(pw);
		return r;
	}
	r = procwatch_connector_on(pw);
	if (connector_err)
		*connector_err = r;
	*out = pw;
	return 0;
}

void procwatch_free(procwatch *pw)
{
	if (!pw)
		return;
	procwatch_connector_off(pw);
	procwatch_forget_all(pw);
	close(pw->epfd);
	procwatch_tab_free(pw->tab);
	free(pw);
}

int procwatch_fd(const procwatch *pw)
{
	return pw->epfd;
}

int procwatch_sync(procwatch *pw)
{
	int r = 0;
	for (;;) {
		struct epoll_event ev[64];
		int n = epoll_wait(pw->epfd, ev, 64, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			procwatch_connector_off(pw);
			procwatch_forget_all(pw);
			return r;
		}
		for (int i = 0; i < n; i++) {
			if (ev[i].data.u64 == PROCWATCH_NL_TOKEN) {
				if (pw->nl < 0)
					continue;
				int d = procwatch_drain(pw, NULL, NULL);
				if (d < 0) {
					/* Cannot tell what was lost: stop caching exes for good
					 * (the identities, from pidfds, stay good). */
					procwatch_connector_off(pw);
					pw->st.losses++;
					r = d;
				}
				continue;
			}
			/* A tracked process has exited: its pid may be reused from now on. */
			int fd = procwatch_tab_remove(pw->tab, ev[i].data.u64);
			if (fd >= 0) {
				procwatch_close_handle(pw, fd);
				pw->st.exits++;
			}
		}
		/* Fewer than asked: every ready fd was reported (later ones came after this call).
		 */
		if (n < (int)(sizeof(ev) / sizeof(ev[0])))
			return r;
	}
}

/* Reads pid's exe into pw->exe; caches it when pid is tracked and exec events arrive. */
static const char *procwatch_read_exe(procwatch *pw, pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(path, pw->exe, sizeof(pw->exe) - 1);
	if (n < 0)
		return NULL;
	pw->exe[n] = '\0';
	pw->st.exe_reads++;
	/* Kept only while exec events arrive: an exec after this read, or one under way during it,
	 * is reported after the new image is in place, and drops it at the next sync. */
	if (pw->nl >= 0)
		(void)procwatch_tab_set_exe(pw->tab, pid, pw->exe);
	return pw->exe;
}

static uint64_t procwatch_track_new(procwatch *pw, pid_t pid)
{
	/* Only for a thread-group leader (EINVAL for another thread's tid): its pidfd fires when
	 * the whole process has exited, before the leader's pid can be reaped. */
	int fd = pidfd_open(pid, 0);
	if (fd < 0)
		return 0;
	int dropped = -1;
	uint64_t token = procwatch_tab_add(pw->tab, pid, fd, &dropped);
	if (dropped >= 0) {
		procwatch_close_handle(pw, dropped);
		pw->st.evictions++;
	}
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = token};
	if (epoll_ctl(pw->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
		(void)procwatch_tab_remove(pw->tab, token);
		close(fd);
		return 0;
	}
	return token;
}

uint64_t procwatch_track(procwatch *pw, pid_t pid)
{
	if (pid <= 0)
		return 0;
	uint64_t token = procwatch_tab_token(pw->tab, pid);
	if (!token)
		token = procwatch_track_new(pw, pid);
	/* The exe as of this request (before it is answered and the process may be gone). */
	if (token && pw->nl >= 0 && !procwatch_tab_exe(pw->tab, pid))
		(void)procwatch_read_exe(pw, pid);
	return token;
}

const char *procwatch_exe(procwatch *pw, pid_t pid)
{
	if (pid <= 0)
		return NULL;
	const char *exe = procwatch_tab_exe(pw->tab, pid);
	if (exe) {
		pw->st.exe_hits++;
		return exe;
	}
	return procwatch_read_exe(pw, pid);
}

void procwatch_get_stats(const procwatch *pw, struct procwatch_stats *st)
{
	*st = pw->st;
	st->tracked = procwatch_tab_count(pw->tab);
	st->connector = pw->nl >= 0;
}
