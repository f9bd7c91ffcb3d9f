/* scan: the judgement of one environment variable (is it a likely secret, and why) and the masked
 * form of a value for output. Pure: no I/O. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "client/scan.h"
#include "client/scan_internal.h"

/* ---- judgement ---- */

static char lc(char c)
{
	return (char)tolower((unsigned char)c);
}

bool scan_ci_prefix(const char *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	if (len < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lc(s[i]) != lc(lit[i]))
			return false;
	return true;
}

bool scan_ci_eq(const char *s, size_t len, const char *lit)
{
	return len == strlen(lit) && scan_ci_prefix(s, len, lit);
}

bool scan_ci_suffix(const char *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	return len >= n && scan_ci_prefix(s + len - n, n, lit);
}

static const char *ci_find(const char *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	for (size_t i = 0; i + n <= len; i++)
		if (scan_ci_prefix(s + i, len - i, lit))
			return s + i;
	return NULL;
}

static bool is_alnum(char c)
{
	return isalnum((unsigned char)c);
}

static bool is_b64url(char c)
{
	return is_alnum(c) || c == '-' || c == '_';
}

/* Whole-word match of a token in a name split at '_', '-', '.'. */
static bool name_has_word(const char *n, size_t len, const char *word)
{
	size_t i = 0;
	while (i < len) {
		size_t s = i;
		while (i < len && n[i] != '_' && n[i] != '-' && n[i] != '.')
			i++;
		if (scan_ci_eq(n + s, i - s, word))
			return true;
		i++;
	}
	return false;
}

static bool is_placeholder(const char *v, size_t len)
{
	static const char *const pre[] = {"changeme",    "change-me",  "change_me",   "changeit",
	                                  "example",     "dummy",      "todo",        "fixme",
	                                  "placeholder", "replace-me", "replace_me",  "replaceme",
	                                  "your_",       "your-",      "yourpassword"};
	for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++)
		if (scan_ci_prefix(v, len, pre[i]))
			return true;
	if (len >= 2 && v[0] == '<' && v[len - 1] == '>')
		return true;
	size_t marks = 0;
	for (size_t i = 0; i < len; i++) {
		char c = v[i];
		if (c == 'x' || c == 'X' || c == '*')
			marks++;
		else if (c != '.' && c != '-' && c != '_')
			return false;
	}
	return marks >= 3 || (len >= 3 && marks == 0);
}

static bool is_path(const char *v, size_t len)
{
	return (len >= 1 && v[0] == '/') || scan_ci_prefix(v, len, "./") ||
	       scan_ci_prefix(v, len, "../") || scan_ci_prefix(v, len, "~/");
}

/* At v[i]: `prefix` followed by at least min chars of the class; the match starts a word. */
static bool token_at(const char *v, size_t len, size_t i, const char *prefix, size_t min,
                     bool (*cls)(char))
{
	size_t n = strlen(prefix);
	if (i + n > len || memcmp(v + i, prefix, n) != 0)
		return false;
	if (i > 0 && is_alnum(v[i - 1]))
		return false;
	size_t k = i + n;
	while (k < len && cls(v[k]))
		k++;
	return k - (i + n) >= min;
}

static bool is_upper_digit(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_alnum_c(char c)
{
	return is_alnum(c);
}

static bool is_alnum_us(char c)
{
	return is_alnum(c) || c == '_';
}

static bool is_slack(char c)
{
	return is_alnum(c) || c == '-';
}

static bool is_b64url_c(char c)
{
	return is_b64url(c);
}

static bool is_jwt_at(const char *v, size_t len, size_t i)
{
	if (!token_at(v, len, i, "eyJ", 10, is_b64url_c))
		return false;
	size_t k = i + 3;
	while (k < len && is_b64url(v[k]))
		k++;
	if (k >= len || v[k] != '.')
		return false;
	size_t s = ++k;
	while (k < len && is_b64url(v[k]))
		k++;
	return k - s >= 10 && k < len && v[k] == '.';
}

static const char *value_format(const char *v, size_t len)
{
	if (!v || !len)
		return NULL;
	if (memmem(v, len, "-----BEGIN ", 11) && memmem(v, len, "PRIVATE KEY-----", 16))
		return "private key (PEM)";
	for (size_t i = 0; i < len; i++) {
		char c = v[i];
		if (c == 'A' && (token_at(v, len, i, "AKIA", 16, is_upper_digit) ||
		                 token_at(v, len, i, "ASIA", 16, is_upper_digit)))
			return "AWS access key id";
		if (c == 'g' && (token_at(v, len, i, "ghp_", 36, is_alnum_c) ||
		                 token_at(v, len, i, "gho_", 36, is_alnum_c) ||
		                 token_at(v, len, i, "ghu_", 36, is_alnum_c) ||
		                 token_at(v, len, i, "ghs_", 36, is_alnum_c) ||
		                 token_at(v, len, i, "ghr_", 36, is_alnum_c) ||
		                 token_at(v, len, i, "github_pat_", 22, is_alnum_us)))
			return "GitHub token";
		if (c == 'x' && i + 5 <= len && memcmp(v + i, "xox", 3) == 0 &&
		    strchr("abprse", v[i + 3]) && v[i + 4] == '-' &&
		    token_at(v, len, i + 5, "", 10, is_slack) && (i == 0 || !is_alnum(v[i - 1])))
			return "Slack token";
		if ((c == 's' || c == 'r') && (token_at(v, len, i, "sk_live_", 16, is_alnum_c) ||
		                               token_at(v, len, i, "rk_live_", 16, is_alnum_c)))
			return "Stripe live key";
		if (c == 'e' && is_jwt_at(v, len, i))
			return "JSON web token";
	}
	return NULL;
}

/* scheme://user:password@host with a literal password. */
static bool url_with_password(const char *v, size_t len)
{
	const char *p = v;
	size_t left = len;
	const char *s;
	while ((s = memmem(p, left, "://", 3))) {
		size_t start = (size_t)(s - v);
		bool scheme = start > 0 && isalpha((unsigned char)v[start - 1]);
		size_t a = start + 3, e = a;
		while (e < len && v[e] != '/' && v[e] != '?' && v[e] != '#' && v[e] != ' ' &&
		       v[e] != '\n')
			e++;
		const char *at = NULL;
		for (size_t i = a; i < e; i++)
			if (v[i] == '@')
				at = v + i; /* the last '@' ends the userinfo */
		if (scheme && at) {
			const char *colon = memchr(v + a, ':', (size_t)(at - (v + a)));
			if (colon) {
				const char *pw = colon + 1;
				size_t pl = (size_t)(at - pw);
				if (pl > 0 && pw[0] != '$' && !is_placeholder(pw, pl))
					return true;
			}
		}
		p = s + 3;
		left = len - (size_t)(p - v);
	}
	return false;
}

/* key=value connection strings: "host=db password=s3cret", "Server=x;Password=y". */
static bool conn_with_password(const char *v, size_t len)
{
	static const char *const keys[] = {"password=", "pwd="};
	for (size_t k = 0; k < 2; k++) {
		const char *p = v;
		size_t left = len;
		const char *f;
		while ((f = ci_find(p, left, keys[k]))) {
			bool start =
			    f == v || f[-1] == ' ' || f[-1] == ';' || f[-1] == '&' || f[-1] == '?';
			const char *pw = f + strlen(keys[k]);
			size_t pl = 0;
			while (pw + pl < v + len && pw[pl] != ' ' && pw[pl] != ';' && pw[pl] != '&')
				pl++;
			if (start && pl > 0 && pw[0] != '$' && !is_placeholder(pw, pl))
				return true;
			p = pw;
			left = len - (size_t)(p - v);
		}
	}
	return false;
}

static bool name_says_secret(const char *n, size_t len)
{
	static const char *const sub[] = {
	    "PASSWORD",  "PASSWD",      "PASSPHRASE",     "SECRET",     "TOKEN",
	    "API_KEY",   "APIKEY",      "PRIVATE_KEY",    "PRIVATEKEY", "ACCESS_KEY",
	    "ACCESSKEY", "SIGNING_KEY", "ENCRYPTION_KEY", "MASTER_KEY", "CREDENTIAL"};
	static const char *const words[] = {"AUTH", "PWD", "PASS"};
	static const char *const settings[] = {
	    "_TTL",        "_TIMEOUT",  "_LENGTH",   "_LEN",      "_EXPIRY",   "_EXPIRES",
	    "_EXPIRATION", "_LIFETIME", "_URL",      "_URI",      "_HOST",     "_HOSTNAME",
	    "_PORT",       "_USER",     "_USERNAME", "_NAME",     "_PATH",     "_DIR",
	    "_ENABLED",    "_ENABLE",   "_DISABLED", "_TYPE",     "_MODE",     "_ALGORITHM",
	    "_HEADER",     "_ENDPOINT", "_ISSUER",   "_AUDIENCE", "_PROVIDER", "_METHOD",
	    "_VERSION",    "_REGION",   "_ID",       "_COUNT",    "_SIZE",     "_LIMIT",
	    "_INTERVAL",   "_POLICY",   "_SCOPE",    "_SCOPES",   "_PREFIX",   "_REQUIRED",
	    "_SOCKET",     "_SOCK",     "_ADDR",     "_ADDRESS"};
	if (scan_ci_eq(n, len, "PWD") || scan_ci_eq(n, len, "OLDPWD"))
		return false;
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		if (scan_ci_suffix(n, len, settings[i]))
			return false;
	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++)
		if (ci_find(n, len, sub[i]))
			return true;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (name_has_word(n, len, words[i]))
			return true;
	return false;
}

static bool value_is_setting(const char *v, size_t len)
{
	static const char *const b[] = {"true", "false", "yes", "no", "on", "off", "null", "none"};
	for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
		if (scan_ci_eq(v, len, b[i]))
			return true;
	if (len > 1 && v[0] == '/') { /* an absolute path: where something is, not a secret */
		size_t i = 0;
		while (i < len && !isspace((unsigned char)v[i]))
			i++;
		if (i == len)
			return true;
	}
	if (len <= 5) {
		size_t i = 0;
		while (i < len && isdigit((unsigned char)v[i]))
			i++;
		if (i == len)
			return true;
	}
	return false;
}

static double entropy(const char *v, size_t len)
{
	unsigned cnt[256] = {0};
	for (size_t i = 0; i < len; i++)
		cnt[(unsigned char)v[i]]++;
	double h = 0;
	for (int i = 0; i < 256; i++) {
		if (!cnt[i])
			continue;
		double p = (double)cnt[i] / (double)len;
		h -= p * log2(p);
	}
	return h;
}

static bool high_entropy(const char *v, size_t len)
{
	if (len < SCAN_ENTROPY_MIN_LEN || v[0] == '/')
		return false;
	bool up = false, low = false, dig = false;
	for (size_t i = 0; i < len; i++) {
		char c = v[i];
		if (c >= 'A' && c <= 'Z')
			up = true;
		else if (c >= 'a' && c <= 'z')
			low = true;
		else if (c >= '0' && c <= '9')
			dig = true;
		else if (c != '+' && c != '/' && c != '=' && c != '_' && c != '-')
			return false;
	}
	return up && low && dig && entropy(v, len) >= SCAN_ENTROPY_BITS;
}

static bool judge(const char *n, size_t nlen, const char *v, size_t vlen, struct scan_verdict *out,
                  int depth)
{
	while (vlen && isspace((unsigned char)v[0])) {
		v++;
		vlen--;
	}
	while (vlen && isspace((unsigned char)v[vlen - 1]))
		vlen--;
	if (vlen == 0)
		return false;
	if (v[0] == '$') {
		if (vlen >= 3 && v[1] == '{' && v[vlen - 1] == '}' &&
		    !memmem(v + 2, vlen - 2, "${", 2)) {
			/* ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:=d}, ${VAR:?err} */
			size_t i = 2;
			while (i < vlen - 1 && (is_alnum(v[i]) || v[i] == '_'))
				i++;
			if (depth < 4 && i < vlen - 1 &&
			    (v[i] == ':' || v[i] == '-' || v[i] == '=')) {
				if (v[i] == ':')
					i++;
				if (i < vlen - 1 && (v[i] == '-' || v[i] == '='))
					return judge(n, nlen, v + i + 1, vlen - i - 2, out,
					             depth + 1);
			}
			return false;
		}
		size_t i = 1;
		while (i < vlen && (is_alnum(v[i]) || v[i] == '_'))
			i++;
		if (i == vlen)
			return false;
	}
	if (is_placeholder(v, vlen))
		return false;
	if (scan_ci_suffix(n, nlen, "_FILE") && is_path(v, vlen))
		return false;
	const char *f = value_format(v, vlen);
	if (f) {
		*out = (struct scan_verdict){f, "format"};
		return true;
	}
	if (url_with_password(v, vlen)) {
		*out = (struct scan_verdict){"URL with credentials", "url"};
		return true;
	}
	if (conn_with_password(v, vlen)) {
		*out = (struct scan_verdict){"connection string with a password", "url"};
		return true;
	}
	if (name_says_secret(n, nlen) && !value_is_setting(v, vlen) && !memmem(v, vlen, "${", 2)) {
		*out = (struct scan_verdict){"name suggests a secret", "name"};
		return true;
	}
	if (high_entropy(v, vlen)) {
		*out = (struct scan_verdict){"high-entropy value", "entropy"};
		return true;
	}
	return false;
}

bool scan_judge(const char *name, size_t nlen, const char *val, size_t vlen, struct scan_verdict *v)
{
	struct scan_verdict tmp;
	return judge(name, nlen, val, vlen, v ? v : &tmp, 0);
}

void scan_mask(const char *val, size_t vlen, char out[SCAN_MASK_MAX])
{
	static const char stars[] = "********";
	if (vlen < SCAN_MASK_SHOW_MIN) {
		memcpy(out, stars, sizeof(stars));
		return;
	}
	char e[4] = {val[0], val[1], val[vlen - 2], val[vlen - 1]};
	for (int i = 0; i < 4; i++)
		if (!isprint((unsigned char)e[i]) || (unsigned char)e[i] > 0x7e)
			e[i] = '?';
	snprintf(out, SCAN_MASK_MAX, "%c%c%s%c%c", e[0], e[1], stars, e[2], e[3]);
}
