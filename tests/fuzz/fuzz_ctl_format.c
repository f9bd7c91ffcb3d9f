/* Fuzzes secretctl's --format templates (client/ctl_format.c): parse returns 0 or -EINVAL with a
 * non-empty error; what parses has at most CTL_FORMAT_PARTS_MAX parts whose text runs lie in the
 * buffer and whose fields exist; rendering into a small and a large buffer returns 0 or
 * -ENOBUFS, always NUL-terminated within cap, the small one a prefix of the large one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl_format.h"
#include "fuzz.h"

static const struct ctl_format_field fields[] = {
    {"Name", false, false}, {"Version", true, false}, {"X", false, false}, {"Labels", false, true}};
static const char *const values[] = {"db/\"a\"\n", "12", NULL, "k=v"};

/* The map field's lookup: every key is there; the whole map is an object. */
static const char *lookup(void *ud, size_t field, const char *key)
{
	if (field != 3 || (key && strlen(key) > CTL_FORMAT_KEY_MAX))
		abort();
	return key ? key : "{\"k\":\"v\"}";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ctl_format f;
	char err[CTL_FORMAT_ERR_MAX];
	memset(err, 0, sizeof(err));
	int rc = ctl_format_parse((const char *)data, size, fields, 4, &f, err);
	if (rc != 0 && rc != -EINVAL)
		abort();
	if (rc != 0) {
		size_t n = strnlen(err, sizeof(err));
		if (n == 0 || n == sizeof(err))
			abort();
		return 0;
	}
	if (size >= CTL_FORMAT_TEXT_MAX || f.n > CTL_FORMAT_PARTS_MAX)
		abort();
	for (size_t i = 0; i < f.n; i++) {
		const struct ctl_format_part *p = &f.parts[i];
		if (!p->action &&
		    (p->off > CTL_FORMAT_TEXT_MAX || p->len > CTL_FORMAT_TEXT_MAX - p->off))
			abort();
		if (p->action && p->field != CTL_FORMAT_WHOLE && p->field >= 4)
			abort();
		if (p->action && p->index &&
		    (p->field != 3 || p->len > CTL_FORMAT_KEY_MAX ||
		     p->off + p->len > CTL_FORMAT_TEXT_MAX))
			abort();
	}
	static char big[64 * 1024], small[16];
	size_t nb = 0, ns = 0;
	int rb =
	    ctl_format_render_map(&f, values, lookup, NULL, "{\"k\":1}", big, sizeof(big), &nb);
	int rs = ctl_format_render(&f, values, NULL, small, sizeof(small), &ns);
	if ((rb != 0 && rb != -ENOBUFS) || (rs != 0 && rs != -ENOBUFS))
		abort();
	if (nb >= sizeof(big) || big[nb] != '\0' || ns >= sizeof(small) || small[ns] != '\0')
		abort();
	return 0;
}
