#include "broker/store/anchor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fileio.h"

static const char anchor_magic[] = "secretd-audit-anchor 1 ";

static void anchor_hex(const uint8_t *v, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[v[i] >> 4];
		out[2 * i + 1] = hx[v[i] & 15];
	}
	out[2 * n] = '\0';
}

int anchor_format(const struct anchor *a, char *buf, size_t cap)
{
	char mac[2 * ANCHOR_MAC_BYTES + 1], tag[2 * ANCHOR_MAC_BYTES + 1];
	anchor_hex(a->mac, ANCHOR_MAC_BYTES, mac);
	anchor_hex(a->tag, ANCHOR_MAC_BYTES, tag);
	int n = snprintf(buf, cap, "%s%llu %s %s\n", anchor_magic, (unsigned long long)a->seq, mac,
	                 tag);
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	return n;
}

static int anchor_unhex(const char *p, size_t len, uint8_t *out, size_t n)
{
	if (len != 2 * n)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return -EBADMSG;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return 0;
}

int anchor_parse(const char *p, size_t len, struct anchor *out)
{
	if (len > ANCHOR_LINE_MAX)
		return -E2BIG;
	if (len && p[len - 1] == '\n')
		len--;
	size_t ml = sizeof(anchor_magic) - 1;
	if (len < ml || memcmp(p, anchor_magic, ml) != 0)
		return -EBADMSG;
	p += ml;
	len -= ml;
	/* SEQ: decimal, no sign, no leading zero (but "0"), fits in 64 bits */
	size_t i = 0;
	uint64_t seq = 0;
	while (i < len && p[i] >= '0' && p[i] <= '9') {
		unsigned d = (unsigned)(p[i] - '0');
		if (seq > (UINT64_MAX - d) / 10)
			return -EBADMSG;
		seq = seq * 10 + d;
		i++;
	}
	if (i == 0 || (i > 1 && p[0] == '0') || i >= len || p[i] != ' ')
		return -EBADMSG;
	p += i + 1;
	len -= i + 1;
	const size_t hl = 2 * ANCHOR_MAC_BYTES;
	if (len != hl + 1 + hl || p[hl] != ' ')
		return -EBADMSG;
	struct anchor a = {.seq = seq};
	if (anchor_unhex(p, hl, a.mac, ANCHOR_MAC_BYTES) < 0 ||
	    anchor_unhex(p + hl + 1, hl, a.tag, ANCHOR_MAC_BYTES) < 0)
		return -EBADMSG;
	*out = a;
	return 0;
}

int anchor_read(const char *path, struct anchor *out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	char buf[ANCHOR_LINE_MAX + 1];
	size_t len = 0;
	int r = fileio_read_upto(fd, buf, sizeof(buf), &len);
	if (r < 0)
		return r;
	if (len == sizeof(buf))
		return -E2BIG;
	return anchor_parse(buf, len, out);
}

int anchor_write(const char *path, const struct anchor *a)
{
	char line[ANCHOR_LINE_MAX], tmp[PATH_MAX];
	int n = anchor_format(a, line, sizeof(line));
	if (n < 0)
		return n;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, line, (size_t)n);
	int r = w == n ? 0 : w < 0 ? -errno : -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}
