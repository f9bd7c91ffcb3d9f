/* scan: the kind of a file by its name and the extractors of the variables each kind holds:
 * compose and Kubernetes YAML (libyaml), .env files and Dockerfiles (client/envfile). */
#include <errno.h>
#include <string.h>

#include <sodium.h>
#include <yaml.h>

#include "client/envfile.h"
#include "client/scan.h"
#include "client/scan_internal.h"

/* ---- file kinds ---- */

static bool yml_ext(const char *s, size_t len)
{
	return scan_ci_suffix(s, len, ".yml") || scan_ci_suffix(s, len, ".yaml");
}

enum scan_file_kind scan_file_kind(const char *path)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	size_t n = strlen(b);
	if (scan_ci_prefix(b, n, "Dockerfile") || scan_ci_prefix(b, n, "Containerfile") ||
	    scan_ci_suffix(b, n, ".dockerfile"))
		return SCAN_FILE_DOCKERFILE;
	if (yml_ext(b, n))
		return scan_ci_prefix(b, n, "docker-compose") || scan_ci_prefix(b, n, "compose")
		           ? SCAN_FILE_COMPOSE
		           : SCAN_FILE_YAML;
	if (scan_ci_prefix(b, n, ".env") || scan_ci_suffix(b, n, ".env"))
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
	return l == 0 || scan_ci_eq(s, l, "~") || scan_ci_eq(s, l, "null");
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
