/* labels: key and value rules, and the KEY=VALUE / KEY- argument syntax (labels.h). */
#include "common/labels.h"

#include <errno.h>
#include <string.h>

static bool labels_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int labels_key_check(const char *key, size_t len, const char **why)
{
	const char *w = NULL;
	if (!key || len == 0)
		w = "a label key is empty";
	else if (len > LABELS_KEY_MAX)
		w = "a label key is longer than 128 bytes";
	else if (!labels_alnum(key[0]) || !labels_alnum(key[len - 1]))
		w = "a label key must begin and end with a letter or digit";
	for (size_t i = 0; !w && i < len; i++) {
		char c = key[i];
		if (!labels_alnum(c) && c != '.' && c != '_' && c != '-' && c != '/')
			w = "a label key holds only letters, digits and . _ - /";
	}
	if (w && why)
		*why = w;
	return w ? -EINVAL : 0;
}

int labels_value_check(const char *value, size_t len, const char **why)
{
	const char *w = NULL;
	if (!value && len)
		w = "a label value is missing";
	else if (len > LABELS_VALUE_MAX)
		w = "a label value is longer than 256 bytes";
	for (size_t i = 0; !w && i < len; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c < 0x20 || c > 0x7e)
			w = "a label value holds only printable ASCII characters";
	}
	if (w && why)
		*why = w;
	return w ? -EINVAL : 0;
}

int labels_arg_parse(const char *arg, size_t len, bool remove_ok, size_t *klen, const char **value,
                     size_t *vlen, bool *remove, const char **why)
{
	const char *eq = arg ? memchr(arg, '=', len) : NULL;
	if (!eq) {
		if (!remove_ok || !arg || len < 2 || arg[len - 1] != '-') {
			if (why)
				*why = remove_ok ? "a label is KEY=VALUE (set) or KEY- (remove)"
				                 : "a label is KEY=VALUE";
			return -EINVAL;
		}
		if (labels_key_check(arg, len - 1, why) < 0)
			return -EINVAL;
		*klen = len - 1;
		*value = NULL;
		*vlen = 0;
		*remove = true;
		return 0;
	}
	size_t k = (size_t)(eq - arg);
	if (labels_key_check(arg, k, why) < 0 || labels_value_check(eq + 1, len - k - 1, why) < 0)
		return -EINVAL;
	*klen = k;
	*value = eq + 1;
	*vlen = len - k - 1;
	*remove = false;
	return 0;
}
