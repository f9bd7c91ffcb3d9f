/* scan: judgement of environment variables and the extractors for each kind of file. */
#include "client/scan.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <yaml.h>

#include "client/envfile.h"
#include "common/secret.h"

#define SCAN_VAR_SHOW_MAX 128 /* bytes of a variable name kept for output */

/* ---- judgement ---- */

static char lc(char c)
{
	return (char)tolower((unsigned char)c);
}

static bool ci_prefix(const char *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	if (len < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lc(s[i]) != lc(lit[i]))
			return false;
	return true;
}

static bool ci_eq(const char *s, size_t len, const char *lit)
{
	return len == strlen(lit) && ci_prefix(s, len, lit);
}

static bool ci_suffix(const char *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	return len >= n && ci_prefix(s + len - n, n, lit);
}

static const char *ci_find(const char *s, size_t len, const char *lit)
{
	size_t n = strlen(lit);
	for (size_t i = 0; i + n <= len; i++)
		if (ci_prefix(s + i, len - i, lit))
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
		if (ci_eq(n + s, i - s, word))
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
		if (ci_prefix(v, len, pre[i]))
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
	return (len >= 1 && v[0] == '/') || ci_prefix(v, len, "./") || ci_prefix(v, len, "../") ||
	       ci_prefix(v, len, "~/");
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
	if (ci_eq(n, len, "PWD") || ci_eq(n, len, "OLDPWD"))
		return false;
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
		if (ci_suffix(n, len, settings[i]))
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
		if (ci_eq(v, len, b[i]))
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
	if (ci_suffix(n, nlen, "_FILE") && is_path(v, vlen))
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

/* ---- file kinds ---- */

static bool yml_ext(const char *s, size_t len)
{
	return ci_suffix(s, len, ".yml") || ci_suffix(s, len, ".yaml");
}

enum scan_file_kind scan_file_kind(const char *path)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	size_t n = strlen(b);
	if (ci_prefix(b, n, "Dockerfile") || ci_prefix(b, n, "Containerfile") ||
	    ci_suffix(b, n, ".dockerfile"))
		return SCAN_FILE_DOCKERFILE;
	if (yml_ext(b, n))
		return ci_prefix(b, n, "docker-compose") || ci_prefix(b, n, "compose")
		           ? SCAN_FILE_COMPOSE
		           : SCAN_FILE_YAML;
	if (ci_prefix(b, n, ".env") || ci_suffix(b, n, ".env"))
		return SCAN_FILE_DOTENV;
	return SCAN_FILE_NONE;
}

/* ---- YAML (libyaml document API) ---- */

struct ywalk {
	yaml_document_t *doc;
	const char *file;
	scan_var_fn fn;
	void *ctx;
	size_t visits;
	bool service_found;
};

static yaml_node_t *ynode(struct ywalk *w, int id)
{
	if (++w->visits > SCAN_YAML_VISITS_MAX)
		return NULL;
	return yaml_document_get_node(w->doc, id);
}

static bool yscalar_is(yaml_node_t *n, const char *s)
{
	return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == strlen(s) &&
	       memcmp(n->data.scalar.value, s, n->data.scalar.length) == 0;
}

/* Value of key in a mapping, following "<<" merge keys. */
static yaml_node_t *ymap_get(struct ywalk *w, yaml_node_t *m, const char *key, int depth)
{
	if (!m || m->type != YAML_MAPPING_NODE || depth > SCAN_YAML_DEPTH_MAX)
		return NULL;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++)
		if (yscalar_is(ynode(w, p->key), key))
			return ynode(w, p->value);
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		if (!yscalar_is(ynode(w, p->key), "<<"))
			continue;
		yaml_node_t *v = ynode(w, p->value);
		if (v && v->type == YAML_MAPPING_NODE)
			return ymap_get(w, v, key, depth + 1);
		if (v && v->type == YAML_SEQUENCE_NODE)
			for (yaml_node_item_t *i = v->data.sequence.items.start;
			     i < v->data.sequence.items.top; i++) {
				yaml_node_t *r = ymap_get(w, ynode(w, *i), key, depth + 1);
				if (r)
					return r;
			}
	}
	return NULL;
}

static bool ynull(yaml_node_t *v)
{
	if (!v || v->type != YAML_SCALAR_NODE)
		return true;
	if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = (const char *)v->data.scalar.value;
	size_t l = v->data.scalar.length;
	return l == 0 || ci_eq(s, l, "~") || ci_eq(s, l, "null");
}

static int yemit(struct ywalk *w, yaml_node_t *at, const char *name, size_t nlen, yaml_node_t *v,
                 bool map_form)
{
	return w->fn(w->ctx, w->file, (unsigned)at->start_mark.line + 1, name, nlen,
	             (const char *)v->data.scalar.value, v->data.scalar.length, map_form);
}

/* environment: / args: in list ("- KEY=value") or map ("KEY: value") form. */
static int compose_env(struct ywalk *w, yaml_node_t *env, int depth)
{
	if (!env || depth > SCAN_YAML_DEPTH_MAX)
		return 0;
	int r = 0;
	if (env->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *i = env->data.sequence.items.start;
		     i < env->data.sequence.items.top && r == 0; i++) {
			yaml_node_t *it = ynode(w, *i);
			if (!it || it->type != YAML_SCALAR_NODE)
				continue;
			const char *s = (const char *)it->data.scalar.value;
			const char *eq = memchr(s, '=', it->data.scalar.length);
			if (!eq || eq == s)
				continue; /* KEY alone: taken from the host's environment */
			size_t nlen = (size_t)(eq - s);
			r = w->fn(w->ctx, w->file, (unsigned)it->start_mark.line + 1, s, nlen,
			          eq + 1, it->data.scalar.length - nlen - 1, false);
		}
	} else if (env->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *p = env->data.mapping.pairs.start;
		     p < env->data.mapping.pairs.top && r == 0; p++) {
			yaml_node_t *k = ynode(w, p->key), *v = ynode(w, p->value);
			if (!k || k->type != YAML_SCALAR_NODE)
				continue;
			if (yscalar_is(k, "<<")) {
				if (v && v->type == YAML_SEQUENCE_NODE) {
					for (yaml_node_item_t *i = v->data.sequence.items.start;
					     i < v->data.sequence.items.top && r == 0; i++)
						r = compose_env(w, ynode(w, *i), depth + 1);
				} else {
					r = compose_env(w, v, depth + 1);
				}
				continue;
			}
			if (ynull(v))
				continue;
			r = yemit(w, k, (const char *)k->data.scalar.value, k->data.scalar.length,
			          v, true);
		}
	}
	if (w->visits > SCAN_YAML_VISITS_MAX)
		return -E2BIG;
	return r;
}

static int compose_doc(struct ywalk *w, yaml_node_t *root, const char *only)
{
	yaml_node_t *svcs = ymap_get(w, root, "services", 0);
	if (!svcs || svcs->type != YAML_MAPPING_NODE)
		return 0;
	int r = 0;
	for (yaml_node_pair_t *p = svcs->data.mapping.pairs.start;
	     p < svcs->data.mapping.pairs.top && r == 0; p++) {
		yaml_node_t *k = ynode(w, p->key), *s = ynode(w, p->value);
		if (!k || k->type != YAML_SCALAR_NODE || !s || s->type != YAML_MAPPING_NODE)
			continue;
		if (only && !yscalar_is(k, only))
			continue;
		w->service_found = true;
		r = compose_env(w, ymap_get(w, s, "environment", 0), 0);
		yaml_node_t *build = ymap_get(w, s, "build", 0);
		if (r == 0 && build && build->type == YAML_MAPPING_NODE)
			r = compose_env(w, ymap_get(w, build, "args", 0), 0);
	}
	return w->visits > SCAN_YAML_VISITS_MAX ? -E2BIG : r;
}

/* Kubernetes: every `env:` sequence of {name: N, value: V} anywhere in the document. */
static int k8s_walk(struct ywalk *w, yaml_node_t *n, int depth)
{
	if (!n || depth > SCAN_YAML_DEPTH_MAX)
		return w->visits > SCAN_YAML_VISITS_MAX ? -E2BIG : 0;
	int r = 0;
	if (n->type == YAML_SEQUENCE_NODE) {
		for (yaml_node_item_t *i = n->data.sequence.items.start;
		     i < n->data.sequence.items.top && r == 0; i++)
			r = k8s_walk(w, ynode(w, *i), depth + 1);
	} else if (n->type == YAML_MAPPING_NODE) {
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top && r == 0; p++) {
			yaml_node_t *k = ynode(w, p->key), *v = ynode(w, p->value);
			if (yscalar_is(k, "env") && v && v->type == YAML_SEQUENCE_NODE) {
				for (yaml_node_item_t *i = v->data.sequence.items.start;
				     i < v->data.sequence.items.top && r == 0; i++) {
					yaml_node_t *it = ynode(w, *i);
					yaml_node_t *nm = ymap_get(w, it, "name", 0);
					yaml_node_t *val = ymap_get(w, it, "value", 0);
					if (!nm || nm->type != YAML_SCALAR_NODE || ynull(val))
						continue;
					r = yemit(w, nm, (const char *)nm->data.scalar.value,
					          nm->data.scalar.length, val, true);
				}
			} else {
				r = k8s_walk(w, v, depth + 1);
			}
		}
	}
	if (r == 0 && w->visits > SCAN_YAML_VISITS_MAX)
		r = -E2BIG;
	return r;
}

static void ywipe_doc(yaml_document_t *d)
{
	for (yaml_node_t *n = d->nodes.start; n < d->nodes.top; n++)
		if (n->type == YAML_SCALAR_NODE && n->data.scalar.value)
			sodium_memzero(n->data.scalar.value, n->data.scalar.length);
}

static void ywipe_parser(yaml_parser_t *p)
{
	if (p->buffer.start)
		sodium_memzero(p->buffer.start, (size_t)(p->buffer.end - p->buffer.start));
	if (p->raw_buffer.start)
		sodium_memzero(p->raw_buffer.start,
		               (size_t)(p->raw_buffer.end - p->raw_buffer.start));
}

static int scan_yaml(bool compose, const char *file, const char *buf, size_t len, const char *only,
                     scan_var_fn fn, void *ctx, const char **why)
{
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	struct ywalk w = {.file = file, .fn = fn, .ctx = ctx};
	int r = 0;
	for (;;) {
		yaml_document_t doc;
		if (!yaml_parser_load(&parser, &doc)) {
			if (why)
				*why = parser.problem ? parser.problem : "invalid YAML";
			r = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
			break;
		}
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		if (!root) {
			yaml_document_delete(&doc);
			break;
		}
		w.doc = &doc;
		w.visits = 0;
		bool is_compose = compose || ymap_get(&w, root, "services", 0) != NULL;
		if (is_compose)
			r = compose_doc(&w, root, only);
		if (r == 0 && !compose)
			r = k8s_walk(&w, root, 0);
		ywipe_doc(&doc);
		yaml_document_delete(&doc);
		if (r == -E2BIG) {
			if (why)
				*why = "YAML too large or too deeply aliased";
			r = -EINVAL;
		}
		if (r)
			break;
	}
	ywipe_parser(&parser);
	yaml_parser_delete(&parser);
	if (r == 0 && only && !w.service_found)
		return -ENOENT;
	return r;
}

/* ---- .env and Dockerfile through envfile ---- */

struct envctx {
	const char *file;
	scan_var_fn fn;
	void *ctx;
};

static int env_var(void *c, const char *name, size_t nlen, const char *val, size_t vlen,
                   unsigned line)
{
	struct envctx *e = c;
	return e->fn(e->ctx, e->file, line, name, nlen, val, vlen, false);
}

int scan_buffer(enum scan_file_kind kind, const char *file, const char *buf, size_t len,
                const char *only_service, scan_var_fn fn, void *ctx, const char **why)
{
	struct envctx e = {file, fn, ctx};
	struct envfile_cb cb = {.var = env_var, .ctx = &e};
	switch (kind) {
	case SCAN_FILE_DOCKERFILE:
		return envfile_parse_dockerfile(buf, len, &cb);
	case SCAN_FILE_COMPOSE:
	case SCAN_FILE_YAML:
		if (len > SCAN_FILE_MAX)
			return -EFBIG;
		return scan_yaml(kind == SCAN_FILE_COMPOSE, file, buf, len, only_service, fn, ctx,
		                 why);
	case SCAN_FILE_DOTENV:
	case SCAN_FILE_NONE:
	default:
		return envfile_parse(buf, len, &cb);
	}
}

/* ---- reading and walking ---- */

int scan_read_file(int dirfd, const char *path, bool nofollow, char **out, size_t *len)
{
	int fd = openat(dirfd, path,
	                O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		close(fd);
		return e;
	}
	if ((uint64_t)st.st_size > SCAN_FILE_MAX) {
		close(fd);
		return -EFBIG;
	}
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *b = secret_bytes_alloc(cap + 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			close(fd);
			secret_bytes_free(b);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) { /* grew while we read */
			close(fd);
			secret_bytes_free(b);
			return -EFBIG;
		}
	}
	close(fd);
	b[n] = '\0';
	*out = b;
	*len = n;
	return 0;
}

static char *clean_copy(const char *s, size_t len, size_t max)
{
	bool cut = len > max;
	if (cut)
		len = max;
	char *o = malloc(len + (cut ? 4 : 1));
	if (!o)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		o[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (cut)
		memcpy(o + len, "...", 3);
	o[len + (cut ? 3 : 0)] = '\0';
	return o;
}

static struct scan_finding *report_add(struct scan_report *r)
{
	if (r->n >= SCAN_FINDINGS_MAX)
		return NULL;
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 32;
		struct scan_finding *nf = realloc(r->f, nc * sizeof(*nf));
		if (!nf)
			return NULL;
		r->f = nf;
		r->cap = nc;
	}
	struct scan_finding *f = &r->f[r->n];
	memset(f, 0, sizeof(*f));
	return f;
}

static int report_var(void *ctx, const char *file, unsigned line, const char *name, size_t nlen,
                      const char *val, size_t vlen, bool map_form)
{
	struct scan_report *r = ctx;
	struct scan_verdict v;
	if (!scan_judge(name, nlen, val, vlen, &v))
		return 0;
	struct scan_finding *f = report_add(r);
	if (!f)
		return r->n >= SCAN_FINDINGS_MAX ? 0 : -ENOMEM;
	f->file = clean_copy(file, strlen(file), 4096);
	f->variable = clean_copy(name, nlen, SCAN_VAR_SHOW_MAX);
	if (!f->file || !f->variable) {
		free(f->file);
		free(f->variable);
		return -ENOMEM;
	}
	f->line = line;
	f->reason = v.reason;
	f->kind = v.kind;
	scan_mask(val, vlen, f->masked);
	r->n++;
	return 0;
}

static void warn(struct scan_report *r, const char *path, const char *what)
{
	r->warnings++;
	if (!r->quiet)
		fprintf(stderr, "secretctl: scan: %s: %s; skipped\n", path, what);
}

static int scan_one(struct scan_report *r, int dirfd, const char *name, const char *path,
                    enum scan_file_kind kind, bool nofollow, bool explicit)
{
	char *buf = NULL;
	size_t len = 0;
	int e = scan_read_file(dirfd, name, nofollow, &buf, &len);
	if (e < 0) {
		if (explicit) {
			r->io_error = true;
			if (!r->quiet)
				fprintf(stderr, "secretctl: scan: %s: %s\n", path,
				        e == -EFBIG ? "file too large" : strerror(-e));
			return e;
		}
		warn(r, path, e == -EFBIG ? "file too large" : strerror(-e));
		return 0;
	}
	const char *why = NULL;
	e = scan_buffer(kind, path, buf, len, NULL, report_var, r, &why);
	secret_bytes_free(buf);
	if (e == -ENOMEM)
		return e;
	if (e < 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "cannot parse (%s)",
		         why           ? why
		         : e == -EFBIG ? "too large"
		                       : strerror(-e));
		warn(r, path, msg);
	}
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool skip_dir(const char *n)
{
	return !strcmp(n, ".git") || !strcmp(n, "node_modules") || !strcmp(n, ".hg") ||
	       !strcmp(n, ".svn");
}

static char *join(const char *dir, const char *name)
{
	size_t dl = strlen(dir);
	bool slash = dl > 0 && dir[dl - 1] == '/';
	char *p = NULL;
	if (asprintf(&p, "%s%s%s", dir, slash ? "" : "/", name) < 0)
		return NULL;
	return p;
}

/* Walks the directory open at dfd (owned: closed here). */
static int walk(struct scan_report *r, int dfd, const char *path, int depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = -errno;
		close(dfd);
		warn(r, path, strerror(-e));
		return 0;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			char **nn = realloc(names, nc * sizeof(*nn));
			if (!nn) {
				ret = -ENOMEM;
				break;
			}
			names = nn;
			cap = nc;
		}
		if (!(names[n] = strdup(de->d_name))) {
			ret = -ENOMEM;
			break;
		}
		n++;
	}
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct stat st;
		if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		char *sub = join(path, names[i]);
		if (!sub) {
			ret = -ENOMEM;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			if (!skip_dir(names[i])) {
				if (depth >= SCAN_DEPTH_MAX) {
					warn(r, sub, "too deep");
				} else {
					int cfd =
					    openat(dirfd(d), names[i],
					           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
					if (cfd < 0)
						warn(r, sub, strerror(errno));
					else
						ret = walk(r, cfd, sub, depth + 1);
				}
			}
		} else if (S_ISREG(st.st_mode)) {
			enum scan_file_kind k = scan_file_kind(names[i]);
			if (k != SCAN_FILE_NONE)
				ret = scan_one(r, dirfd(d), names[i], sub, k, true, false);
		}
		free(sub);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return ret;
}

int scan_path(struct scan_report *r, const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		int e = -errno;
		r->io_error = true;
		if (!r->quiet)
			fprintf(stderr, "secretctl: scan: %s: %s\n", path, strerror(-e));
		return e;
	}
	if (S_ISDIR(st.st_mode)) {
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			int e = -errno;
			r->io_error = true;
			if (!r->quiet)
				fprintf(stderr, "secretctl: scan: %s: %s\n", path, strerror(-e));
			return e;
		}
		return walk(r, fd, path, 0);
	}
	enum scan_file_kind k = scan_file_kind(path);
	return scan_one(r, AT_FDCWD, path, path, k == SCAN_FILE_NONE ? SCAN_FILE_DOTENV : k, false,
	                true);
}

/* ---- /proc ---- */

static char *read_small(const char *path, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *b = malloc(max + 1);
	size_t n = 0;
	while (b && n < max) {
		ssize_t r = read(fd, b + n, max - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (b)
		b[n] = '\0';
	return b;
}

static char *cgroup_of(const char *cg)
{
	/* "0::/path" (v2), else the first line's path */
	const char *line = cg, *pick = NULL;
	while (line && *line) {
		const char *nl = strchr(line, '\n');
		if (!strncmp(line, "0::", 3)) {
			pick = line;
			break;
		}
		if (!pick)
			pick = line;
		line = nl ? nl + 1 : NULL;
	}
	if (!pick)
		return strdup("?");
	const char *p = strchr(pick, ':');
	p = p ? strchr(p + 1, ':') : NULL;
	p = p ? p + 1 : pick;
	size_t l = strcspn(p, "\n");
	return clean_copy(p, l, 1024);
}

static char *container_id(const char *cg)
{
	size_t run = 0;
	for (size_t i = 0;; i++) {
		char c = cg[i];
		bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
		if (hex) {
			run++;
			continue;
		}
		if (run == 64)
			return strndup(cg + i - 64, 64);
		run = 0;
		if (!c)
			return NULL;
	}
}

struct proc_ctx {
	struct scan_report *r;
	const char *environ_path;
	int pid;
	char *comm, *cgroup, *container;
	uint8_t key[crypto_generichash_KEYBYTES];
};

static int proc_var(struct proc_ctx *pc, const char *name, size_t nlen, const char *val,
                    size_t vlen, unsigned idx)
{
	struct scan_report *r = pc->r;
	struct scan_verdict v;
	if (!scan_judge(name, nlen, val, vlen, &v))
		return 0;
	uint8_t h[16];
	crypto_generichash(h, sizeof(h), (const uint8_t *)val, vlen, pc->key, sizeof(pc->key));
	for (size_t i = 0; i < r->n; i++) {
		struct scan_finding *o = &r->f[i];
		if (o->pid && !strcmp(o->cgroup, pc->cgroup) && strlen(o->variable) == nlen &&
		    !memcmp(o->variable, name, nlen) && !memcmp(o->vhash, h, sizeof(h))) {
			o->also++;
			return 0;
		}
	}
	size_t before = r->n;
	int e = report_var(r, pc->environ_path, idx, name, nlen, val, vlen, false);
	if (e < 0 || r->n == before)
		return e;
	struct scan_finding *f = &r->f[r->n - 1];
	memcpy(f->vhash, h, sizeof(h));
	f->pid = pc->pid;
	f->comm = strdup(pc->comm);
	f->cgroup = strdup(pc->cgroup);
	f->container = pc->container ? strdup(pc->container) : NULL;
	if (!f->comm || !f->cgroup || (pc->container && !f->container))
		return -ENOMEM;
	return 0;
}

static int proc_one(struct proc_ctx *pc, const char *root, int pid)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%d/environ", root, pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* gone, or not ours to read */
	char *b = secret_bytes_alloc(SCAN_PROC_ENVIRON_MAX + 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	size_t n = 0;
	while (n < SCAN_PROC_ENVIRON_MAX) {
		ssize_t r = read(fd, b + n, SCAN_PROC_ENVIRON_MAX - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	b[n] = '\0';
	char p2[512];
	snprintf(p2, sizeof(p2), "%s/%d/comm", root, pid);
	char *comm = read_small(p2, 64);
	snprintf(p2, sizeof(p2), "%s/%d/cgroup", root, pid);
	char *cg = read_small(p2, 16384);
	pc->pid = pid;
	pc->environ_path = path;
	pc->comm = comm ? clean_copy(comm, strcspn(comm, "\n"), 64) : strdup("?");
	pc->cgroup = cgroup_of(cg ? cg : "");
	pc->container = pc->cgroup ? container_id(pc->cgroup) : NULL;
	int ret = (!pc->comm || !pc->cgroup) ? -ENOMEM : 0;
	unsigned idx = 0;
	for (size_t i = 0; i < n && ret == 0;) {
		size_t l = strnlen(b + i, n - i);
		idx++;
		const char *eq = memchr(b + i, '=', l);
		if (eq && eq > b + i)
			ret = proc_var(pc, b + i, (size_t)(eq - (b + i)), eq + 1,
			               l - (size_t)(eq - (b + i)) - 1, idx);
		i += l + 1;
	}
	secret_bytes_free(b);
	free(comm);
	free(cg);
	free(pc->comm);
	free(pc->cgroup);
	free(pc->container);
	pc->comm = pc->cgroup = pc->container = NULL;
	return ret;
}

int scan_proc(struct scan_report *r, const char *proc_root)
{
	DIR *d = opendir(proc_root);
	if (!d)
		return -errno;
	struct proc_ctx pc = {.r = r};
	randombytes_buf(pc.key, sizeof(pc.key));
	int self = (int)getpid(), ret = 0;
	struct dirent *de;
	while ((de = readdir(d)) && ret == 0) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid > INT32_MAX || pid == self)
			continue;
		ret = proc_one(&pc, proc_root, (int)pid);
	}
	closedir(d);
	sodium_memzero(pc.key, sizeof(pc.key));
	return ret;
}

/* ---- output ---- */

const char *scan_format(const struct scan_finding *f, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s:%u: %s: %s: %s", f->file, f->line, f->variable, f->reason,
	                 f->masked);
	if (f->pid && n >= 0 && (size_t)n < len) {
		if (f->also)
			snprintf(buf + n, len - (size_t)n, " (%s; and %u more process%s)", f->comm,
			         f->also, f->also == 1 ? "" : "es");
		else
			snprintf(buf + n, len - (size_t)n, " (%s)", f->comm);
	}
	return buf;
}

json_t *scan_report_json(const struct scan_report *r)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < r->n; i++) {
		const struct scan_finding *f = &r->f[i];
		json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s}", "file", f->file, "line",
		                      (json_int_t)f->line, "variable", f->variable, "reason",
		                      f->reason, "kind", f->kind, "masked", f->masked);
		if (o && f->pid) {
			json_object_set_new(o, "pid", json_integer(f->pid));
			json_object_set_new(o, "comm", json_string(f->comm));
			json_object_set_new(o, "cgroup", json_string(f->cgroup));
			json_object_set_new(o, "container",
			                    f->container ? json_string(f->container) : json_null());
			json_object_set_new(o, "more_processes", json_integer(f->also));
		}
		if (!o || json_array_append_new(a, o) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static int finding_cmp(const void *pa, const void *pb)
{
	const struct scan_finding *a = pa, *b = pb;
	if (!a->pid != !b->pid)
		return a->pid ? 1 : -1;
	if (a->pid) {
		int c = strcmp(a->cgroup, b->cgroup);
		if (c)
			return c;
		if (a->pid != b->pid)
			return a->pid < b->pid ? -1 : 1;
	}
	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return 0;
}

void scan_report_sort(struct scan_report *r)
{
	for (size_t i = 0; i < r->n; i++)
		r->f[i].seq = i;
	if (r->n > 1)
		qsort(r->f, r->n, sizeof(*r->f), finding_cmp);
}

void scan_report_free(struct scan_report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->f[i].file);
		free(r->f[i].variable);
		free(r->f[i].comm);
		free(r->f[i].cgroup);
		free(r->f[i].container);
	}
	free(r->f);
	r->f = NULL;
	r->n = r->cap = 0;
}
