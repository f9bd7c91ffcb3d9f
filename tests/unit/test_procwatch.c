/* Tests of broker/procwatch. The pure table: tokens, least-recently-used eviction, the hash under
 * churn (against a plain array), cached exes, and the connector's messages fed as the kernel
 * sends them (exec, per-CPU sequence gaps, acks, garbage). Then the real thing (root, proc
 * connector): a child's exe across exec, its exit, and a pid reused by another process. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/os/procwatch.h"
#include "tests/unit/runner.h"

/* ---- the table ---- */

START_TEST(test_tokens)
{
	procwatch_tab *t = NULL;
	ck_assert_int_eq(procwatch_tab_new(&t, 4), 0);
	int dropped = 7;
	uint64_t a = procwatch_tab_add(t, 100, 10, &dropped);
	ck_assert_uint_gt(a, 0);
	ck_assert_int_eq(dropped, -1);
	uint64_t b = procwatch_tab_add(t, 200, 20, &dropped);
	ck_assert_uint_ne(a, b);
	ck_assert_uint_eq(procwatch_tab_token(t, 100), a);
	ck_assert_uint_eq(procwatch_tab_token(t, 200), b);
	ck_assert_uint_eq(procwatch_tab_token(t, 300), 0);
	ck_assert_uint_eq(procwatch_tab_token(t, 0), 0);
	ck_assert_uint_eq(procwatch_tab_count(t), 2);
	/* exit: the token dies, a stale token is refused */
	ck_assert_int_eq(procwatch_tab_remove(t, a), 10);
	ck_assert_int_eq(procwatch_tab_remove(t, a), -1);
	ck_assert_int_eq(procwatch_tab_remove(t, 0), -1);
	ck_assert_uint_eq(procwatch_tab_token(t, 100), 0);
	/* the same pid again (reused) gets a new token, never the old one, even in the same slot */
	uint64_t a2 = procwatch_tab_add(t, 100, 11, &dropped);
	ck_assert_uint_ne(a2, a);
	ck_assert_int_eq(procwatch_tab_remove(t, a), -1);
	ck_assert_uint_eq(procwatch_tab_token(t, 100), a2);
	/* re-adding a tracked pid replaces it and hands the old handle back */
	uint64_t a3 = procwatch_tab_add(t, 100, 12, &dropped);
	ck_assert_int_eq(dropped, 11);
	ck_assert_uint_ne(a3, a2);
	ck_assert_uint_eq(procwatch_tab_count(t), 2);
	/* bad input */
	ck_assert_uint_eq(procwatch_tab_add(t, 0, 1, &dropped), 0);
	ck_assert_uint_eq(procwatch_tab_add(t, -5, 1, &dropped), 0);
	ck_assert_uint_eq(procwatch_tab_add(t, 5, -1, &dropped), 0);
	ck_assert_int_eq(procwatch_tab_new(&t, 0), -EINVAL);
	procwatch_tab_free(t);
}
END_TEST

START_TEST(test_lru)
{
	procwatch_tab *t = NULL;
	ck_assert_int_eq(procwatch_tab_new(&t, 3), 0);
	int dropped;
	procwatch_tab_add(t, 1, 101, &dropped);
	procwatch_tab_add(t, 2, 102, &dropped);
	procwatch_tab_add(t, 3, 103, &dropped);
	ck_assert_int_eq(procwatch_tab_set_exe(t, 2, "/bin/two"), 0);
	/* 1 is used again: 2 is now the least recently used */
	ck_assert_uint_gt(procwatch_tab_token(t, 1), 0);
	procwatch_tab_add(t, 4, 104, &dropped);
	ck_assert_int_eq(dropped, 102);
	ck_assert_uint_eq(procwatch_tab_token(t, 2), 0);
	ck_assert_ptr_null(procwatch_tab_exe(t, 2));
	ck_assert_uint_eq(procwatch_tab_count(t), 3);
	/* then 3 (1 and 4 were used after it) */
	procwatch_tab_add(t, 5, 105, &dropped);
	ck_assert_int_eq(dropped, 103);
	/* every handle can be read back to be closed */
	int seen = 0;
	for (size_t i = 0; i < procwatch_tab_count(t); i++)
		seen |= 1 << (procwatch_tab_handle_at(t, i) - 100);
	ck_assert_int_eq(seen, (1 << 1) | (1 << 4) | (1 << 5));
	ck_assert_int_eq(procwatch_tab_handle_at(t, 3), -1);
	procwatch_tab_clear(t);
	ck_assert_uint_eq(procwatch_tab_count(t), 0);
	ck_assert_uint_eq(procwatch_tab_token(t, 1), 0);
	procwatch_tab_free(t);
}
END_TEST

/* Random adds, lookups, removals and evictions over colliding pids, checked against a plain
 * array that does the same the slow way. */
START_TEST(test_churn)
{
	enum { MAX = 64, PIDS = 300, STEPS = 200000 };
	procwatch_tab *t = NULL;
	ck_assert_int_eq(procwatch_tab_new(&t, MAX), 0);
	struct {
		pid_t pid;
		uint64_t token, used;
	} ref[MAX];
	memset(ref, 0, sizeof(ref));
	uint64_t clock = 0;
	srandom(42);
	for (int step = 0; step < STEPS; step++) {
		/* half the pids share one home slot (long probe chains), half spread out */
		pid_t pid = 1 + (pid_t)(random() % PIDS) * (random() % 2 ? 1024 : 1);
		int k = -1;
		for (int i = 0; i < MAX; i++)
			if (ref[i].pid == pid)
				k = i;
		int op = (int)(random() % 3);
		if (op == 0) { /* lookup */
			uint64_t tok = procwatch_tab_token(t, pid);
			ck_assert_uint_eq(tok, k >= 0 ? ref[k].token : 0);
			if (k >= 0)
				ref[k].used = ++clock;
		} else if (op == 1 && k >= 0) { /* exit */
			ck_assert_int_eq(procwatch_tab_remove(t, ref[k].token), (int)pid);
			ref[k].pid = 0;
		} else if (k < 0) { /* a new process */
			int slot = -1, lru = -1;
			for (int i = 0; i < MAX; i++) {
				if (!ref[i].pid && slot < 0)
					slot = i;
				if (ref[i].pid && (lru < 0 || ref[i].used < ref[lru].used))
					lru = i;
			}
			int want_dropped = -1;
			if (slot < 0) {
				slot = lru;
				want_dropped = (int)ref[lru].pid;
			}
			int dropped;
			uint64_t tok = procwatch_tab_add(t, pid, (int)pid, &dropped);
			ck_assert_int_eq(dropped, want_dropped);
			ref[slot].pid = pid;
			ref[slot].token = tok;
			ref[slot].used = ++clock;
		}
	}
	size_t n = 0;
	for (int i = 0; i < MAX; i++)
		if (ref[i].pid) {
			n++;
			ck_assert_uint_eq(procwatch_tab_token(t, ref[i].pid), ref[i].token);
		}
	ck_assert_uint_eq(procwatch_tab_count(t), n);
	procwatch_tab_free(t);
}
END_TEST

START_TEST(test_exe)
{
	procwatch_tab *t = NULL;
	ck_assert_int_eq(procwatch_tab_new(&t, 8), 0);
	int dropped;
	procwatch_tab_add(t, 10, 1, &dropped);
	procwatch_tab_add(t, 11, 2, &dropped);
	ck_assert_ptr_null(procwatch_tab_exe(t, 10));
	ck_assert_int_eq(procwatch_tab_set_exe(t, 10, "/usr/bin/dash"), 0);
	ck_assert_int_eq(procwatch_tab_set_exe(t, 11, "/usr/bin/cat"), 0);
	ck_assert_int_eq(procwatch_tab_set_exe(t, 12, "/x"), -ENOENT);
	ck_assert_str_eq(procwatch_tab_exe(t, 10), "/usr/bin/dash");
	ck_assert_str_eq(procwatch_tab_exe(t, 11), "/usr/bin/cat");
	char longp[600];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	ck_assert_int_eq(procwatch_tab_set_exe(t, 11, longp), 0);
	ck_assert_uint_eq(strlen(procwatch_tab_exe(t, 11)), PROCWATCH_EXE_MAX - 1);
	/* forgetting exes keeps the processes */
	uint64_t tok = procwatch_tab_token(t, 10);
	procwatch_tab_forget_exes(t);
	ck_assert_ptr_null(procwatch_tab_exe(t, 10));
	ck_assert_ptr_null(procwatch_tab_exe(t, 11));
	ck_assert_uint_eq(procwatch_tab_token(t, 10), tok);
	/* an exit drops the exe with the entry; the pid reused starts without one */
	ck_assert_int_eq(procwatch_tab_set_exe(t, 10, "/usr/bin/dash"), 0);
	ck_assert_int_ge(procwatch_tab_remove(t, tok), 0);
	procwatch_tab_add(t, 10, 3, &dropped);
	ck_assert_ptr_null(procwatch_tab_exe(t, 10));
	procwatch_tab_free(t);
}
END_TEST

/* ---- the connector's messages ---- */

/* struct cn_msg without its flexible data[] (which may not sit mid-struct in ISO C). */
struct cn_hdr {
	struct cb_id id;
	__u32 seq;
	__u32 ack;
	__u16 len;
	__u16 flags;
};
_Static_assert(sizeof(struct cn_hdr) == sizeof(struct cn_msg), "cn_hdr mirrors cn_msg");

/* One datagram as the kernel sends it: nlmsghdr, cn_msg, proc_event. */
struct kmsg {
	struct nlmsghdr nh;
	struct cn_hdr cm;
	struct proc_event ev;
} __attribute__((packed));

static size_t mk(struct kmsg *m, uint32_t cpu, uint32_t seq, uint32_t what, pid_t pid, pid_t tgid)
{
	memset(m, 0, sizeof(*m));
	m->nh.nlmsg_len = sizeof(*m);
	m->nh.nlmsg_type = NLMSG_DONE;
	m->cm.id.idx = CN_IDX_PROC;
	m->cm.id.val = CN_VAL_PROC;
	m->cm.seq = seq;
	m->cm.len = sizeof(m->ev);
	m->ev.what = what;
	m->ev.cpu = cpu;
	switch (what) {
	case PROC_EVENT_EXEC:
		m->ev.event_data.exec.process_pid = pid;
		m->ev.event_data.exec.process_tgid = tgid;
		break;
	case PROC_EVENT_FORK:
		m->ev.event_data.fork.child_pid = pid;
		m->ev.event_data.fork.child_tgid = tgid;
		break;
	case PROC_EVENT_EXIT:
		m->ev.event_data.exit.process_pid = pid;
		m->ev.event_data.exit.process_tgid = tgid;
		break;
	}
	return sizeof(*m);
}

static int feed(procwatch_tab *t, uint32_t cpu, uint32_t seq, uint32_t what, pid_t pid, pid_t tgid)
{
	struct kmsg m;
	size_t n = mk(&m, cpu, seq, what, pid, tgid);
	return procwatch_tab_feed(t, &m, n, 0, NULL);
}

static procwatch_tab *tab_with_exes(void)
{
	procwatch_tab *t = NULL;
	ck_assert_int_eq(procwatch_tab_new(&t, 8), 0);
	int dropped;
	procwatch_tab_add(t, 100, 1, &dropped);
	procwatch_tab_add(t, 200, 2, &dropped);
	return t;
}

static void set_exes(procwatch_tab *t)
{
	ck_assert_int_eq(procwatch_tab_set_exe(t, 100, "/bin/a"), 0);
	ck_assert_int_eq(procwatch_tab_set_exe(t, 200, "/bin/b"), 0);
}

START_TEST(test_feed_exec)
{
	procwatch_tab *t = tab_with_exes();
	/* the first message from each CPU cannot tell what came before it: exes are forgotten */
	set_exes(t);
	ck_assert_int_eq(feed(t, 0, 500, PROC_EVENT_FORK, 7, 7), PROCWATCH_FED_FIRST);
	ck_assert_ptr_null(procwatch_tab_exe(t, 100));
	set_exes(t);
	ck_assert_int_eq(feed(t, 1, 9, PROC_EVENT_EXIT, 8, 8), PROCWATCH_FED_FIRST);
	ck_assert_ptr_null(procwatch_tab_exe(t, 200));
	set_exes(t);
	/* in sequence: forks, exits, another process's exec change nothing */
	ck_assert_int_eq(feed(t, 0, 501, PROC_EVENT_FORK, 101, 101), 0);
	ck_assert_int_eq(feed(t, 1, 10, PROC_EVENT_EXIT, 300, 300), 0);
	ck_assert_int_eq(feed(t, 0, 502, PROC_EVENT_EXEC, 300, 300), 0);
	ck_assert_int_eq(feed(t, 0, 503, PROC_EVENT_COMM, 100, 100), 0);
	ck_assert_str_eq(procwatch_tab_exe(t, 100), "/bin/a");
	ck_assert_str_eq(procwatch_tab_exe(t, 200), "/bin/b");
	/* 100 execs: its exe goes, 200's stays */
	ck_assert_int_eq(feed(t, 1, 11, PROC_EVENT_EXEC, 100, 100), PROCWATCH_FED_EXEC);
	ck_assert_ptr_null(procwatch_tab_exe(t, 100));
	ck_assert_str_eq(procwatch_tab_exe(t, 200), "/bin/b");
	ck_assert_uint_gt(procwatch_tab_token(t, 100), 0); /* same process, new image */
	/* an exec reported with a thread's pid names the process by its tgid */
	ck_assert_int_eq(feed(t, 1, 12, PROC_EVENT_EXEC, 201, 200), PROCWATCH_FED_EXEC);
	ck_assert_ptr_null(procwatch_tab_exe(t, 200));
	/* the sequence number wraps */
	set_exes(t);
	struct kmsg m;
	mk(&m, 2, 0xffffffffu, PROC_EVENT_FORK, 1, 1);
	procwatch_tab_feed(t, &m, sizeof(m), 0, NULL);
	set_exes(t);
	ck_assert_int_eq(feed(t, 2, 0, PROC_EVENT_FORK, 2, 2), 0);
	ck_assert_str_eq(procwatch_tab_exe(t, 100), "/bin/a");
	procwatch_tab_free(t);
}
END_TEST

START_TEST(test_feed_gap)
{
	procwatch_tab *t = tab_with_exes();
	feed(t, 0, 10, PROC_EVENT_FORK, 5, 5);
	feed(t, 3, 70, PROC_EVENT_FORK, 5, 5);
	set_exes(t);
	ck_assert_int_eq(feed(t, 0, 11, PROC_EVENT_FORK, 5, 5), 0);
	ck_assert_int_eq(feed(t, 3, 71, PROC_EVENT_FORK, 5, 5), 0);
	/* CPU 3 skipped 72: that message (maybe an exec, allocated and lost in the kernel) is gone
	 */
	ck_assert_int_eq(feed(t, 3, 73, PROC_EVENT_FORK, 5, 5), PROCWATCH_FED_LOST);
	ck_assert_ptr_null(procwatch_tab_exe(t, 100));
	ck_assert_ptr_null(procwatch_tab_exe(t, 200));
	ck_assert_uint_eq(procwatch_tab_count(t), 2);
	/* followed again from there */
	set_exes(t);
	ck_assert_int_eq(feed(t, 3, 74, PROC_EVENT_FORK, 5, 5), 0);
	/* a repeat or a step back is a gap too */
	ck_assert_int_eq(feed(t, 0, 11, PROC_EVENT_FORK, 5, 5), PROCWATCH_FED_LOST);
	set_exes(t);
	/* a CPU beyond the ones followed always counts as a loss */
	ck_assert_int_eq(feed(t, PROCWATCH_CPUS_MAX, 1, PROC_EVENT_FORK, 5, 5), PROCWATCH_FED_LOST);
	set_exes(t);
	ck_assert_int_eq(feed(t, PROCWATCH_CPUS_MAX, 2, PROC_EVENT_FORK, 5, 5), PROCWATCH_FED_LOST);
	ck_assert_ptr_null(procwatch_tab_exe(t, 100));
	procwatch_tab_free(t);
}
END_TEST

START_TEST(test_feed_ack_and_garbage)
{
	procwatch_tab *t = tab_with_exes();
	struct kmsg m;
	mk(&m, 0, 1, PROC_EVENT_NONE, 0, 0);
	m.cm.ack = 1000;
	int err = -1;
	ck_assert_int_eq(procwatch_tab_feed(t, &m, sizeof(m), 999, &err),
	                 PROCWATCH_FED_ACK | PROCWATCH_FED_FIRST);
	ck_assert_int_eq(err, 0);
	/* another process's ack, or ours with an error */
	mk(&m, 0, 2, PROC_EVENT_NONE, 0, 0);
	m.cm.ack = 5;
	ck_assert_int_eq(procwatch_tab_feed(t, &m, sizeof(m), 999, &err), 0);
	mk(&m, 0, 3, PROC_EVENT_NONE, 0, 0);
	m.cm.ack = 1000;
	m.ev.event_data.ack.err = EPERM;
	ck_assert_int_eq(procwatch_tab_feed(t, &m, sizeof(m), 999, &err), PROCWATCH_FED_ACK);
	ck_assert_int_eq(err, EPERM);
	/* anything that cannot be read may have been an exec: exes are forgotten */
	set_exes(t);
	mk(&m, 0, 4, PROC_EVENT_FORK, 1, 1);
	ck_assert_int_eq(procwatch_tab_feed(t, &m, sizeof(m) - 1, 0, NULL), PROCWATCH_FED_LOST);
	ck_assert_ptr_null(procwatch_tab_exe(t, 100));
	set_exes(t);
	mk(&m, 0, 4, PROC_EVENT_FORK, 1, 1);
	m.cm.id.idx = CN_IDX_PROC + 1;
	ck_assert_int_eq(procwatch_tab_feed(t, &m, sizeof(m), 0, NULL), PROCWATCH_FED_LOST);
	ck_assert_ptr_null(procwatch_tab_exe(t, 100));
	set_exes(t);
	mk(&m, 0, 4, PROC_EVENT_FORK, 1, 1);
	m.nh.nlmsg_len = sizeof(m) + 8;
	ck_assert_int_eq(procwatch_tab_feed(t, &m, sizeof(m), 0, NULL), PROCWATCH_FED_LOST);
	set_exes(t);
	mk(&m, 0, 4, PROC_EVENT_FORK, 1, 1);
	m.cm.len = 4;
	ck_assert_int_eq(procwatch_tab_feed(t, &m, sizeof(m), 0, NULL), PROCWATCH_FED_LOST);
	ck_assert_ptr_null(procwatch_tab_exe(t, 200));
	ck_assert_uint_eq(procwatch_tab_count(t), 2);
	procwatch_tab_free(t);
}
END_TEST

/* procwatch_parse: the fields, its limits, and a datagram past PROCWATCH_MSG_MAX refused. */
START_TEST(test_parse)
{
	struct {
		uint8_t pad; /* the parser copies: any alignment */
		struct kmsg m;
		uint8_t tail[PROCWATCH_MSG_MAX];
	} __attribute__((packed)) b;
	memset(&b, 0, sizeof(b));
	mk(&b.m, 3, 41, PROC_EVENT_EXEC, 1234, 1230);
	b.m.cm.ack = 7;
	struct procwatch_msg out;
	ck_assert_int_eq(procwatch_parse(&b.m, sizeof(b.m), &out), 0);
	ck_assert_uint_eq(out.cpu, 3);
	ck_assert_uint_eq(out.seq, 41);
	ck_assert_uint_eq(out.what, PROC_EVENT_EXEC);
	ck_assert_uint_eq(out.ack, 7);
	ck_assert_int_eq(out.tgid, 1230);
	ck_assert_int_eq(out.err, 0);
	/* trailing bytes after a whole message are fine, up to the datagram limit */
	ck_assert_int_eq(procwatch_parse(&b.m, PROCWATCH_MSG_MAX, &out), 0);
	ck_assert_int_eq(procwatch_parse(&b.m, PROCWATCH_MSG_MAX + 1, &out), -EBADMSG);
	ck_assert_int_eq(procwatch_parse(&b.m, sizeof(b.m) - 1, &out), -EBADMSG);
	ck_assert_int_eq(procwatch_parse(NULL, sizeof(b.m), &out), -EBADMSG);
	mk(&b.m, 0, 1, PROC_EVENT_NONE, 0, 0);
	b.m.ev.event_data.ack.err = EPERM;
	ck_assert_int_eq(procwatch_parse(&b.m, sizeof(b.m), &out), 0);
	ck_assert_int_eq(out.err, EPERM);
	ck_assert_int_eq(out.tgid, 0);
}
END_TEST

/* ---- the real connector ---- */

/* A new procwatch with the connector on; NULL (test passes vacuously) only outside CI when this
 * machine has no connector for us. */
static procwatch *live_new(void)
{
	procwatch *pw = NULL;
	int cn = 0;
	ck_assert_int_eq(procwatch_new(&pw, &cn), 0);
	if (cn < 0) {
		const char *ci = getenv("CI");
		ck_assert_msg(!(ci && strcmp(ci, "true") == 0), "no proc connector under CI: %s",
		              strerror(-cn));
		fprintf(stderr, "SKIP live procwatch test: no proc connector (%s)\n",
		        strerror(-cn));
		procwatch_free(pw);
		return NULL;
	}
	return pw;
}

static const char *base_of(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* Reads one line from fd (blocking). */
static void read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;
	while (n + 1 < len) {
		ssize_t r = read(fd, buf + n, 1);
		ck_assert_int_eq(r, 1);
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
}

/* Child: sh prints "sh", waits for a line, then execs cat (which echoes what it is sent). */
static pid_t spawn_sh_then_cat(int *to, int *from)
{
	int in[2], out[2];
	ck_assert_int_eq(pipe(in), 0);
	ck_assert_int_eq(pipe(out), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl("/bin/sh", "sh", "-c", "echo sh; read x; exec cat", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	*to = in[1];
	*from = out[0];
	return pid;
}

START_TEST(test_live_exec)
{
	procwatch *pw = live_new();
	if (!pw)
		return;
	int to, from;
	char line[64];
	pid_t pid = spawn_sh_then_cat(&to, &from);
	read_line(from, line, sizeof(line)); /* sh runs: its exec is reported by now */
	ck_assert_str_eq(line, "sh");
	ck_assert_int_eq(procwatch_sync(pw), 0);
	uint64_t tok = procwatch_track(pw, pid);
	ck_assert_uint_gt(tok, 0);
	const char *exe = procwatch_exe(pw, pid);
	ck_assert_ptr_nonnull(exe);
	ck_assert_msg(strcmp(base_of(exe), "cat") != 0, "exe before exec: %s", exe);
	char first[PROCWATCH_EXE_MAX];
	snprintf(first, sizeof(first), "%s", exe);
	struct procwatch_stats st;
	procwatch_get_stats(pw, &st);
	ck_assert(st.connector);
	uint64_t hits = st.exe_hits, losses = st.losses;
	ck_assert_int_eq(procwatch_sync(pw), 0);
	ck_assert_str_eq(procwatch_exe(pw, pid), first);
	procwatch_get_stats(pw, &st);
	/* The second time from the cache, unless the connector lost events in between (the whole
	 * machine's execs go through it: a busy machine can overrun it, and a loss must forget
	 * every exe). Either way the answer above was right. */
	if (st.losses == losses)
		ck_assert_uint_eq(st.exe_hits, hits + 1);

	/* exec: same process (same token), new exe */
	procwatch_get_stats(pw, &st);
	uint64_t reads = st.exe_reads;
	ck_assert_int_eq(write(to, "go\nping\n", 8), 8);
	read_line(from, line, sizeof(line)); /* echoed by cat: the exec is done and reported */
	ck_assert_str_eq(line, "ping");
	ck_assert_int_eq(procwatch_sync(pw), 0);
	ck_assert_uint_eq(procwatch_track(pw, pid), tok);
	exe = procwatch_exe(pw, pid);
	ck_assert_ptr_nonnull(exe);
	ck_assert_str_eq(base_of(exe), "cat");
	procwatch_get_stats(pw, &st);
	/* The old exe was not served from the cache: the exec event dropped it, or it was gone
	 * already and the exe was read afresh. (Seen in full runs on a busy machine: execs 0 with
	 * no loss reported, the exe read afresh and right; the cause is not known yet.) */
	ck_assert_msg(st.execs >= 1 || st.exe_reads > reads, "execs %llu, exe reads %llu -> %llu",
	              (unsigned long long)st.execs, (unsigned long long)reads,
	              (unsigned long long)st.exe_reads);

	/* exit: the entry goes at the next sync */
	close(to);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	close(from);
	ck_assert_int_eq(procwatch_sync(pw), 0);
	procwatch_get_stats(pw, &st);
	ck_assert_uint_eq(st.tracked, 0);
	ck_assert_uint_ge(st.exits, 1);
	ck_assert_uint_eq(procwatch_track(pw, pid), 0); /* gone (or reused: not tracked yet) */
	procwatch_free(pw);
}
END_TEST

/* The exe is read when the request is checked: an audit record made after the opener is gone
 * still names it. */
START_TEST(test_live_exe_outlives)
{
	procwatch *pw = live_new();
	if (!pw)
		return;
	int to, from;
	char line[64];
	pid_t pid = spawn_sh_then_cat(&to, &from);
	read_line(from, line, sizeof(line));
	ck_assert_int_eq(procwatch_sync(pw), 0);
	ck_assert_uint_gt(procwatch_track(pw, pid), 0);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	close(to);
	close(from);
	const char *exe = procwatch_exe(pw, pid);
	ck_assert_ptr_nonnull(exe);
	ck_assert_str_ne(base_of(exe), "cat");
	procwatch_free(pw);
}
END_TEST

/* Forks a child that gets pid `want` (via ns_last_pid) and runs sleep; -1 if another process
 * took the pid first. */
static pid_t fork_at(pid_t want)
{
	int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	char b[32];
	int n = snprintf(b, sizeof(b), "%d", (int)want - 1);
	ck_assert_int_eq(write(fd, b, (size_t)n), n);
	close(fd);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execl("/bin/sleep", "sleep", "100", (char *)NULL);
		_exit(127);
	}
	if (pid == want)
		return pid;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static bool exe_is(pid_t pid, const char *base)
{
	char p[64], x[PROCWATCH_EXE_MAX];
	snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(p, x, sizeof(x) - 1);
	if (n < 0)
		return false;
	x[n] = '\0';
	return strcmp(base_of(x), base) == 0;
}

/* A pid reused by another process, with no sync in between the exit and the reuse: the new
 * process must get a new token and its own exe, not the cached one. */
START_TEST(test_live_reuse)
{
	procwatch *pw = live_new();
	if (!pw)
		return;
	bool reused = false;
	for (int attempt = 0; attempt < 20 && !reused; attempt++) {
		int to, from;
		char line[64];
		pid_t pid = spawn_sh_then_cat(&to, &from);
		read_line(from, line, sizeof(line));
		ck_assert_int_eq(procwatch_sync(pw), 0);
		uint64_t tok = procwatch_track(pw, pid);
		ck_assert_uint_gt(tok, 0);
		const char *exe = procwatch_exe(pw, pid);
		ck_assert_ptr_nonnull(exe);
		ck_assert_str_eq(procwatch_exe(pw, pid), exe); /* cached */
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(to);
		close(from);
		pid_t again = fork_at(pid);
		if (again < 0)
			continue; /* someone else forked in between: try again */
		reused = true;
		for (int i = 0; i < 1000 && !exe_is(again, "sleep"); i++)
			usleep(1000);
		ck_assert(exe_is(again, "sleep"));
		ck_assert_int_eq(procwatch_sync(pw), 0);
		uint64_t tok2 = procwatch_track(pw, again);
		ck_assert_uint_gt(tok2, 0);
		ck_assert_uint_ne(tok2, tok);
		exe = procwatch_exe(pw, again);
		ck_assert_ptr_nonnull(exe);
		ck_assert_str_eq(base_of(exe), "sleep");
		kill(again, SIGKILL);
		waitpid(again, NULL, 0);
	}
	ck_assert_msg(reused, "could not get a pid reused in 20 attempts");
	procwatch_free(pw);
}
END_TEST

static pid_t thread_tid;
static int thread_ready[2], thread_done[2];

static void *thread_main(void *arg)
{
	thread_tid = gettid();
	char c;
	if (write(thread_ready[1], "t", 1) != 1 || read(thread_done[0], &c, 1) != 1)
		abort();
	return arg;
}

/* A thread's tid is not tracked (token 0) but its exe is still read, each time. */
START_TEST(test_live_untracked)
{
	procwatch *pw = NULL;
	ck_assert_int_eq(procwatch_new(&pw, NULL), 0);
	ck_assert_int_eq(pipe(thread_ready), 0);
	ck_assert_int_eq(pipe(thread_done), 0);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, thread_main, NULL), 0);
	char c;
	ck_assert_int_eq(read(thread_ready[0], &c, 1), 1);
	ck_assert_int_ne(thread_tid, getpid());
	ck_assert_uint_eq(procwatch_track(pw, thread_tid), 0);
	ck_assert_ptr_nonnull(procwatch_exe(pw, thread_tid));
	ck_assert_ptr_nonnull(procwatch_exe(pw, thread_tid));
	struct procwatch_stats st;
	procwatch_get_stats(pw, &st);
	ck_assert_uint_eq(st.exe_hits, 0);
	ck_assert_uint_eq(st.exe_reads, 2);
	ck_assert_int_eq(write(thread_done[1], "x", 1), 1);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_uint_eq(procwatch_track(pw, 0), 0);
	ck_assert_uint_eq(procwatch_track(pw, -1), 0);
	ck_assert_ptr_null(procwatch_exe(pw, 0));
	ck_assert_ptr_nonnull(procwatch_exe(pw, getpid()));
	ck_assert_uint_gt(procwatch_track(pw, getpid()), 0);
	procwatch_free(pw);
}
END_TEST

/* Outside the initial user namespace the kernel ignores the subscription: no exe is cached, each
 * is read afresh (today's behaviour), identities still work. */
START_TEST(test_live_no_connector)
{
	if (unshare(CLONE_NEWUSER) < 0) {
		fprintf(stderr, "SKIP no-connector test: unshare(CLONE_NEWUSER): %s\n",
		        strerror(errno));
		return;
	}
	procwatch *pw = NULL;
	int cn = 0;
	ck_assert_int_eq(procwatch_new(&pw, &cn), 0);
	ck_assert_int_lt(cn, 0);
	ck_assert_int_eq(procwatch_sync(pw), 0);
	ck_assert_uint_gt(procwatch_track(pw, getpid()), 0);
	ck_assert_ptr_nonnull(procwatch_exe(pw, getpid()));
	ck_assert_ptr_nonnull(procwatch_exe(pw, getpid()));
	struct procwatch_stats st;
	procwatch_get_stats(pw, &st);
	ck_assert(!st.connector);
	ck_assert_uint_eq(st.exe_hits, 0);
	ck_assert_uint_eq(st.exe_reads, 2);
	procwatch_free(pw);
}
END_TEST

Suite *unit_suite(void)
{
	Suite *s = suite_create("procwatch");
	TCase *tc = tcase_create("table");
	tcase_add_test(tc, test_tokens);
	tcase_add_test(tc, test_lru);
	tcase_add_test(tc, test_churn);
	tcase_add_test(tc, test_exe);
	tcase_add_test(tc, test_feed_exec);
	tcase_add_test(tc, test_feed_gap);
	tcase_add_test(tc, test_feed_ack_and_garbage);
	tcase_add_test(tc, test_parse);
	suite_add_tcase(s, tc);
	TCase *live = tcase_create("live");
	tcase_add_test(live, test_live_exec);
	tcase_add_test(live, test_live_exe_outlives);
	tcase_add_test(live, test_live_reuse);
	tcase_add_test(live, test_live_untracked);
	tcase_add_test(live, test_live_no_connector);
	suite_add_tcase(s, live);
	return s;
}
