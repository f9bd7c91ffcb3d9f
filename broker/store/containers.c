/* containers.c: the registry of attached containers (schema 006), one MAC'd row per container
 * with its labels, so that a restarted daemon can re-attach the containers that still run. The
 * rows hold no secret material; the MAC (subkey STORE_SUBKEY_CONT) binds every column and the
 * labels in order, so a row edited, added or swapped behind the daemon's back is reported
 * (integrity -EBADMSG) instead of being restored. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/store/store_int.h"

static bool store_cont_str_ok(const char *s, size_t max, bool empty_ok)
{
	if (!s)
		return false;
	size_t n = strnlen(s, max + 1);
	return n <= max && (empty_ok || n > 0);
}

static int store_cont_valid(const struct store_container *c)
{
	if (!c || !store_cont_str_ok(c->id, STORE_CONT_ID_MAX, false) ||
	    !store_cont_str_ok(c->runtime, STORE_CONT_STR_MAX, false) ||
	    !store_cont_str_ok(c->name, STORE_CONT_STR_MAX, true) ||
	    !store_cont_str_ok(c->cgroup, STORE_CONT_STR_MAX, false) ||
	    !store_cont_str_ok(c->target, STORE_CONT_STR_MAX, false) ||
	    (c->root && !store_cont_str_ok(c->root, STORE_CONT_STR_MAX, false)))
		return -EINVAL;
	if (c->pid <= 0 || c->pid > INT32_MAX || c->start_time > INT64_MAX ||
	    c->mount_start > INT64_MAX || c->mount_ns > INT64_MAX || c->mount_pid < 0 ||
	    c->mount_pid > INT32_MAX)
		return -EINVAL;
	if (c->mount != STORE_CONT_UNMOUNTED && c->mount != STORE_CONT_MOUNT_HOOK &&
	    c->mount != STORE_CONT_MOUNT_SELF)
		return -EINVAL;
	if ((c->mount == STORE_CONT_MOUNT_SELF) != (c->mount_pid > 0) ||
	    (c->mount != STORE_CONT_MOUNT_SELF && c->mount_ns))
		return -EINVAL;
	if (c->nlabels > STORE_CONT_LABELS_MAX || (c->nlabels && !c->labels))
		return -EINVAL;
	for (size_t i = 0; i < c->nlabels; i++)
		if (!store_cont_str_ok(c->labels[i].key, STORE_CONT_STR_MAX, false) ||
		    !store_cont_str_ok(c->labels[i].value, STORE_CONT_STR_MAX, true))
			return -EINVAL;
	return 0;
}

/* Computes c's MAC into mac, or with check non-NULL verifies check (-EBADMSG). */
static int store_cont_mac(store *s, const struct store_container *c, uint8_t mac[CRYPT_MAC_BYTES],
                          const uint8_t *check)
{
	struct store_buf b _cleanup_buf_ = {0};
	int r = store_codec_container(&b, c);
	if (r < 0)
		return r;
	if (check)
		return crypt_mac_verify(s->cont_key, b.p, b.len, check);
	crypt_mac(s->cont_key, b.p, b.len, mac);
	return 0;
}

int store_containers_put(store *s, const struct store_container *c)
{
	if (!s)
		return -EINVAL;
	int r = store_cont_valid(c);
	if (r < 0)
		return r;
	uint8_t mac[CRYPT_MAC_BYTES];
	r = store_cont_mac(s, c, mac, NULL);
	if (r < 0)
		return r;
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *del = NULL, *ins = NULL, *lab = NULL;
	r = store_prepare(s->db, "DELETE FROM containers WHERE id = ?1", &del);
	if (r < 0)
		goto out;
	sqlite3_bind_text(del, 1, c->id, -1, SQLITE_STATIC);
	r = store_step_done(del); /* its labels go with it (ON DELETE CASCADE) */
	if (r < 0)
		goto out;
	r = store_prepare(
	    s->db,
	    "INSERT INTO containers (id, hook, runtime, name, cgroup, pid, start_time, "
	    "mount, mount_pid, mount_start, root, target, uid, gid, wants, created, mac, "
	    "mount_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
	    "?14, ?15, ?16, ?17, ?18)",
	    &ins);
	if (r < 0)
		goto out;
	sqlite3_bind_text(ins, 1, c->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(ins, 2, c->hook ? 1 : 0);
	sqlite3_bind_text(ins, 3, c->runtime, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 4, c->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(ins, 5, c->cgroup, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 6, c->pid);
	sqlite3_bind_int64(ins, 7, (int64_t)c->start_time);
	sqlite3_bind_int(ins, 8, (int)c->mount);
	sqlite3_bind_int64(ins, 9, c->mount_pid);
	sqlite3_bind_int64(ins, 10, (int64_t)c->mount_start);
	if (c->root)
		sqlite3_bind_text(ins, 11, c->root, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(ins, 11);
	sqlite3_bind_text(ins, 12, c->target, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 13, c->uid);
	sqlite3_bind_int64(ins, 14, c->gid);
	sqlite3_bind_int(ins, 15, c->wants ? 1 : 0);
	sqlite3_bind_int64(ins, 16, c->created);
	sqlite3_bind_blob(ins, 17, mac, sizeof(mac), SQLITE_TRANSIENT);
	sqlite3_bind_int64(ins, 18, (int64_t)c->mount_ns);
	r = store_step_done(ins);
	if (r < 0 || c->nlabels == 0)
		goto out;
	r = store_prepare(s->db,
	                  "INSERT INTO container_labels (container_id, idx, key, value) "
	                  "VALUES (?1, ?2, ?3, ?4)",
	                  &lab);
	for (size_t i = 0; r == 0 && i < c->nlabels; i++) {
		sqlite3_reset(lab);
		sqlite3_bind_text(lab, 1, c->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(lab, 2, (int64_t)i);
		sqlite3_bind_text(lab, 3, c->labels[i].key, -1, SQLITE_STATIC);
		sqlite3_bind_text(lab, 4, c->labels[i].value, -1, SQLITE_STATIC);
		r = store_step_done(lab);
	}
out:
	return store_end(s->db, r);
}

int store_containers_del(store *s, const char *id)
{
	if (!s || !store_cont_str_ok(id, STORE_CONT_ID_MAX, false))
		return -EINVAL;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = store_prepare(s->db, "DELETE FROM containers WHERE id = ?1", &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	r = store_step_done(st);
	if (r == 0 && sqlite3_changes(s->db) == 0)
		r = -ENOENT;
	return r;
}

static void store_cont_clear(void *elem)
{
	struct store_container *c = elem;
	for (size_t i = 0; i < c->nlabels; i++) {
		free(c->labels[i].key);
		free(c->labels[i].value);
	}
	free(c->labels);
	free(c->id);
	free(c->runtime);
	free(c->name);
	free(c->cgroup);
	free(c->root);
	free(c->target);
	memset(c, 0, sizeof(*c));
}

/* Reads c's labels (in order); a gap or excess in their numbering sets integrity -EBADMSG. */
static int store_cont_labels(store *s, struct store_container *c)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r =
	    store_prepare(s->db,
	                  "SELECT idx, key, value FROM container_labels WHERE container_id = ?1 "
	                  "ORDER BY idx",
	                  &st);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (c->nlabels >= STORE_CONT_LABELS_MAX ||
		    sqlite3_column_int64(st, 0) != (int64_t)c->nlabels) {
			c->integrity = -EBADMSG;
			continue;
		}
		if (c->nlabels == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			void *p = realloc(c->labels, ncap * sizeof(*c->labels));
			if (!p)
				return -ENOMEM;
			c->labels = p;
			cap = ncap;
		}
		struct store_cont_label *l = &c->labels[c->nlabels];
		l->key = store_col_strdup(st, 1);
		l->value = store_col_strdup(st, 2);
		c->nlabels++;
		if (!l->key || !l->value)
			return -ENOMEM;
	}
	return rc == SQLITE_DONE ? 0 : store_sqlerr(rc);
}

/* Fills one row with its labels and checks its MAC: a row that fails is kept with integrity
 * -EBADMSG (the caller decides; one bad row does not hide the others). */
static int store_cont_fill(store *s, sqlite3_stmt *st, void *elem)
{
	struct store_container *c = elem;
	c->id = store_col_strdup(st, 0);
	c->runtime = store_col_strdup(st, 2);
	c->name = store_col_strdup(st, 3);
	c->cgroup = store_col_strdup(st, 4);
	bool has_root = sqlite3_column_type(st, 10) != SQLITE_NULL;
	c->root = has_root ? store_col_strdup(st, 10) : NULL;
	c->target = store_col_strdup(st, 11);
	if (!c->id || !c->runtime || !c->name || !c->cgroup || (has_root && !c->root) || !c->target)
		return -ENOMEM;
	int64_t hook = sqlite3_column_int64(st, 1), mount = sqlite3_column_int64(st, 7);
	int64_t uid = sqlite3_column_int64(st, 12), gid = sqlite3_column_int64(st, 13);
	int64_t wants = sqlite3_column_int64(st, 14);
	c->hook = hook == 1;
	c->pid = sqlite3_column_int64(st, 5);
	c->start_time = (uint64_t)sqlite3_column_int64(st, 6);
	c->mount = (enum store_cont_mount)mount;
	c->mount_pid = sqlite3_column_int64(st, 8);
	c->mount_start = (uint64_t)sqlite3_column_int64(st, 9);
	c->uid = (uint32_t)uid;
	c->gid = (uint32_t)gid;
	c->wants = wants == 1;
	c->created = sqlite3_column_int64(st, 15);
	c->mount_ns = (uint64_t)sqlite3_column_int64(st, 17);
	int r = store_cont_labels(s, c);
	if (r < 0)
		return r;
	const uint8_t *mac = sqlite3_column_blob(st, 16);
	if (c->integrity < 0 || !mac || sqlite3_column_bytes(st, 16) != CRYPT_MAC_BYTES ||
	    (hook != 0 && hook != 1) || (wants != 0 && wants != 1) || uid != (int64_t)c->uid ||
	    gid != (int64_t)c->gid || mount < 0 || mount > 2 || store_cont_valid(c) < 0) {
		c->integrity = -EBADMSG;
		return 0;
	}
	r = store_cont_mac(s, c, NULL, mac);
	if (r == -EBADMSG) {
		c->integrity = -EBADMSG;
		r = 0;
	}
	return r;
}

int store_containers_list(store *s, struct store_container **out, size_t *n)
{
	if (!s || !out || !n)
		return -EINVAL;
	*out = NULL;
	*n = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r =
	    store_prepare(s->db,
	                  "SELECT id, hook, runtime, name, cgroup, pid, start_time, mount, "
	                  "mount_pid, mount_start, root, target, uid, gid, wants, created, mac, "
	                  "mount_ns "
	                  "FROM containers ORDER BY id",
	                  &st);
	if (r < 0)
		return r;
	void *v = NULL;
	r = store_rows_collect(s, st, sizeof(**out), store_cont_fill, store_cont_clear, &v, n);
	*out = v;
	return r;
}

void store_containers_free(struct store_container *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		store_cont_clear(&v[i]);
	free(v);
}
