/* Fuzzes the proc-connector feed (broker/os/procwatch.c): procwatch_parse reads one datagram as
 * the kernel sends it, procwatch_tab_feed applies it to the table of tracked processes. Checked:
 * nothing is read past the input (ASan), parse errors are -EBADMSG and make the feed forget every
 * exe, and a parsed message does exactly what it says: after a message with the previous sequence
 * number from the same CPU, an exec of the tracked thread group drops its exe (and nothing else
 * does), the answer to our subscription is an ACK with the kernel's errno. */
#include <errno.h>
#include <stdbool.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>

#include "broker/os/procwatch.h"
#include "fuzz.h"

#define FUZZ_COOKIE 0x1234 /* our LISTEN's cookie: the kernel's answer carries ack == it + 1 */
#define FUZZ_PID 100       /* the one tracked process */
#define FUZZ_MSG_MIN NLMSG_LENGTH(sizeof(struct cn_msg) + sizeof(struct proc_event))

static void set_exe(procwatch_tab *t)
{
	if (procwatch_tab_set_exe(t, FUZZ_PID, "/usr/bin/app") != 0)
		abort();
}

static bool has_exe(procwatch_tab *t)
{
	return procwatch_tab_exe(t, FUZZ_PID) != NULL;
}

/* The acceptance rule, written out again from the field offsets (nlmsghdr: len at 0; cn_msg at
 * 16: idx 0, val 4, seq 8, ack 12, len 16; proc_event at 36: what 0, cpu 4, data 16). */
static uint32_t u32_at(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static bool acceptable(const uint8_t *d, size_t n)
{
	if (n < FUZZ_MSG_MIN || n > PROCWATCH_MSG_MAX)
		return false;
	uint16_t cnlen;
	memcpy(&cnlen, d + 16 + 16, sizeof(cnlen));
	return u32_at(d) >= FUZZ_MSG_MIN && u32_at(d) <= n && u32_at(d + 16) == CN_IDX_PROC &&
	       u32_at(d + 20) == CN_VAL_PROC && cnlen >= sizeof(struct proc_event);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct procwatch_msg m, m2;
	int pr = procwatch_parse(data, size, &m);
	if (pr != 0 && pr != -EBADMSG)
		abort();
	if ((pr == 0) != acceptable(data, size))
		abort();
	if (pr == 0 && (m.seq != u32_at(data + 24) || m.ack != u32_at(data + 28) ||
	                m.what != u32_at(data + 36) || m.cpu != u32_at(data + 40)))
		abort();
	if (pr == 0 && m.what == PROC_EVENT_EXEC && m.tgid != (int32_t)u32_at(data + 36 + 20))
		abort();
	/* Alignment does not matter: the same bytes one byte further give the same answer. */
	uint8_t *shifted = malloc(size + 1);
	if (!shifted)
		return 0;
	memcpy(shifted + 1, data, size);
	int pr2 = procwatch_parse(shifted + 1, size, &m2);
	if (pr2 != pr || (pr == 0 && memcmp(&m, &m2, sizeof(m)) != 0))
		abort();

	procwatch_tab *t = NULL;
	if (procwatch_tab_new(&t, 16) < 0) {
		free(shifted);
		return 0;
	}
	int dropped = -1;
	if (procwatch_tab_add(t, FUZZ_PID, 3, &dropped) == 0)
		abort();
	int err = -1;
	if (pr == 0 && m.cpu < PROCWATCH_CPUS_MAX && m.seq > 0) {
		/* Prime the CPU's sequence with a fork numbered just before this message. */
		struct cn_msg cm;
		struct proc_event ev;
		memcpy(&cm, shifted + 1 + NLMSG_HDRLEN, sizeof(cm));
		memcpy(&ev, shifted + 1 + NLMSG_HDRLEN + sizeof(cm), sizeof(ev));
		cm.seq = m.seq - 1;
		cm.ack = 0;
		ev.what = PROC_EVENT_FORK;
		memcpy(shifted + 1 + NLMSG_HDRLEN, &cm, sizeof(cm));
		memcpy(shifted + 1 + NLMSG_HDRLEN + sizeof(cm), &ev, sizeof(ev));
		if (procwatch_tab_feed(t, shifted + 1, size, FUZZ_COOKIE, NULL) !=
		    PROCWATCH_FED_FIRST)
			abort();
		set_exe(t);
		int fed = procwatch_tab_feed(t, data, size, FUZZ_COOKIE, &err);
		bool exec = m.what == PROC_EVENT_EXEC && m.tgid == FUZZ_PID;
		bool ack = m.what == PROC_EVENT_NONE && m.ack == FUZZ_COOKIE + 1;
		int want = (exec ? PROCWATCH_FED_EXEC : 0) | (ack ? PROCWATCH_FED_ACK : 0);
		if (fed != want || has_exe(t) == exec || (ack && err != m.err) ||
		    (!ack && err != -1))
			abort();
	} else {
		set_exe(t);
		int fed = procwatch_tab_feed(t, data, size, FUZZ_COOKIE, &err);
		if (pr != 0 && fed != PROCWATCH_FED_LOST)
			abort();
		/* unparsable, a CPU beyond the table, or the first message from a CPU: every exe
		 * is forgotten */
		if (!(fed & (PROCWATCH_FED_LOST | PROCWATCH_FED_FIRST)) || has_exe(t))
			abort();
		if (fed & ~(PROCWATCH_FED_LOST | PROCWATCH_FED_FIRST | PROCWATCH_FED_ACK))
			abort();
	}
	procwatch_tab_free(t);
	free(shifted);
	return 0;
}
