#include "broker/api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker/api_internal.h"
#include "broker/crypt.h"
#include "common/limits.h"

#define API_UID_SLOTS 1024 /* distinct peer uids tracked for the per-uid limit */
#define API_BODY_INITIAL 4096

struct api_uid_count {
	uid_t uid;
	unsigned n;
};

struct api_server {
	api *a;
	bool workload;
	char path[108];
	int fd;
	int epfd;
	struct MHD_Daemon *d;
	struct api_uid_count uids[API_UID_SLOTS];
};

/* ---- replies ---- */

static void api_count(struct api_req *r, unsigned status)
{
	struct metrics *m = r->a->met;
	if (r->srv->workload) {
		m->workload_requests++;
		if (status >= 400)
			m->workload_errors++;
	} else {
		m->admin_requests++;
		if (status >= 400)
			m->admin_errors++;
	}
}

static void api_queue(struct api_req *r, unsigned status, struct MHD_Response *resp,
		      const char *ctype)
{
	if (!resp || r->answered) {
		if (resp)
			MHD_destroy_response(resp);
		return;
	}
	if (ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	r->answered = true;
	api_count(r, status);
}

void api_reply_text(struct api_req *r, unsigned status, const char *ctype, const char *text)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
								    MHD_RESPMEM_MUST_COPY);
	api_queue(r, status, resp, ctype);
}

void api_reply_json(struct api_req *r, unsigned status, json_t *body)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!s) {
		api_reply_text(r, 500, "application/json", "{\"error\":\"out of memory\"}");
		return;
	}
	size_t n = strlen(s);
	s[n] = '\0';
	char *t = realloc(s, n + 2);
	if (t) {
		s = t;
		s[n++] = '\n';
		s[n] = '\0';
	}
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		free(s);
	api_queue(r, status, resp, "application/json");
}

void api_reply_error(struct api_req *r, unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_reply_json(r, status, json_pack("{s:s}", "error", msg));
}

static void api_secret_free(void *p)
{
	crypt_free(p);
}

void api_reply_secret(struct api_req *r, uint8_t *val, size_t len, uint64_t version)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer_with_free_callback(len, val, api_secret_free);
	if (!resp) {
		crypt_free(val);
		api_reply_error(r, 500, "out of memory");
		return;
	}
	char v[32];
	snprintf(v, sizeof(v), "%llu", (unsigned long long)version);
	MHD_add_response_header(resp, "X-Secret-Version", v);
	r->a->met->reads++;
	api_queue(r, 200, resp, "application/octet-stream");
}

void api_reply_errno(struct api_req *r, int err, const char *what)
{
	switch (err) {
	case -EINVAL:
		api_reply_error(r, 400, "%s: invalid argument", what);
		break;
	case -ENOENT:
		api_reply_error(r, 404, "%s: not found", what);
		break;
	case -EEXIST:
		api_reply_error(r, 409, "%s: already exists", what);
		break;
	case -EFBIG:
		api_reply_error(r, 413, "%s: value larger than the limit of %zu bytes", what,
				r->a->cfg.max_value);
		break;
	case -EBADMSG:
		api_reply_error(r, 500,
				"%s: integrity check failed (the stored row was altered, swapped or "
				"rolled back)",
				what);
		break;
	case -EPERM:
	case -EACCES:
		api_reply_error(r, 403, "%s: not permitted", what);
		break;
	case -ELOOP:
		api_reply_error(r, 400, "%s: the mount path is a symlink or crosses one; refused",
				what);
		break;
	case -ESRCH:
		api_reply_error(r, 409, "%s: the process is gone", what);
		break;
	default:
		api_reply_error(r, 500, "%s: %s", what, strerror(-err));
	}
}

json_t *api_body_json(struct api_req *r)
{
	json_error_t jerr;
	json_t *j = json_loadb((const char *)r->body, r->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		api_reply_error(r, 400, "request body must be a JSON object%s%s", j ? "" : ": ",
				j ? "" : jerr.text);
		return NULL;
	}
	return j;
}

const char *api_query(struct api_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* ---- connections ---- */

static struct api_uid_count *api_uid_slot(struct api_server *s, uid_t uid, bool create)
{
	struct api_uid_count *free_slot = NULL;
	for (size_t i = 0; i < API_UID_SLOTS; i++) {
		if (s->uids[i].n && s->uids[i].uid == uid)
			return &s->uids[i];
		if (!s->uids[i].n && !free_slot)
			free_slot = &s->uids[i];
	}
	if (create && free_slot)
		free_slot->uid = uid;
	return create ? free_slot : NULL;
}

static void api_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_ctx,
			    enum MHD_ConnectionNotificationCode code)
{
	struct api_server *s = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		struct api_conn *pc = calloc(1, sizeof(*pc));
		*socket_ctx = pc;
		if (!pc)
			return;
		pc->srv = s;
		pc->who.pidfd = -1;
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		int fd = ci ? ci->connect_fd : -1;
		if (s->workload) {
			pc->ident_rc = ident_from_socket(fd, &pc->who);
			pc->ident_ok = pc->ident_rc == 0;
			pc->uid = pc->who.uid;
		} else {
			struct ucred cred;
			socklen_t len = sizeof(cred);
			pc->ident_rc = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0
					       ? -errno
					       : 0;
			pc->uid = pc->ident_rc == 0 ? cred.uid : (uid_t)-1;
			/* The socket is 0600; check the peer too in case it is bind-mounted. */
			pc->ident_ok = pc->ident_rc == 0 && (cred.uid == 0 || cred.uid == geteuid());
		}
		if (s->workload && pc->ident_ok) {
			struct api_uid_count *u = api_uid_slot(s, pc->uid, true);
			unsigned lim = s->a->cfg.max_conns_per_uid;
			if (!u || u->n >= lim)
				pc->over_limit = true;
			else
				u->n++;
		}
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct api_conn *pc = *socket_ctx;
		if (!pc)
			return;
		if (s->workload && pc->ident_ok && !pc->over_limit) {
			struct api_uid_count *u = api_uid_slot(s, pc->uid, false);
			if (u && u->n)
				u->n--;
		}
		ident_clear(&pc->who);
		free(pc);
		*socket_ctx = NULL;
	}
}

static void api_req_free(struct api_req *r)
{
	if (!r)
		return;
	if (r->body) {
		crypt_free(r->body);
	}
	free(r);
}

static void api_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			  enum MHD_RequestTerminationCode toe)
{
	api_req_free(*req_cls);
	*req_cls = NULL;
}

static int api_body_append(struct api_req *r, const char *data, size_t n)
{
	if (r->too_large || n > r->limit - r->len) {
		r->too_large = true;
		return 0;
	}
	if (r->len + n > r->cap) {
		size_t nc = r->cap ? r->cap : API_BODY_INITIAL;
		while (nc < r->len + n)
			nc *= 2;
		if (nc > r->limit)
			nc = r->limit;
		uint8_t *nb = crypt_alloc(nc + 1);
		if (!nb)
			return -ENOMEM;
		if (r->body) {
			memcpy(nb, r->body, r->len);
			crypt_free(r->body);
		}
		r->body = nb;
		r->cap = nc;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	return 0;
}

static bool api_is_value_upload(const char *method, const char *url)
{
	return strcmp(method, "PUT") == 0 && strncmp(url, "/v1/secrets/", 12) == 0;
}

static enum MHD_Result api_handler(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version,
				   const char *upload_data, size_t *upload_data_size,
				   void **req_cls)
{
	struct api_server *s = cls;
	struct api_req *r = *req_cls;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		*req_cls = r;
		r->a = s->a;
		r->srv = s;
		r->conn = conn;
		r->method = method;
		r->url = url;
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		r->pc = ci ? ci->socket_context : NULL;
		r->limit = api_is_value_upload(method, url) ? s->a->cfg.max_value
							    : SECRETD_JSON_BODY_MAX;
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl) {
			char *end;
			unsigned long long v = strtoull(cl, &end, 10);
			if (*end || v > r->limit)
				r->too_large = true;
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (api_body_append(r, upload_data, *upload_data_size) < 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->answered)
		return MHD_YES;
	if (!r->pc || !r->pc->ident_ok) {
		if (s->workload)
			s->a->met->workload_refused++;
		api_reply_error(r, 403, "%s",
				s->workload ? "cannot identify the connecting process"
					    : "the admin socket is for root only");
	} else if (r->pc->over_limit) {
		s->a->met->workload_refused++;
		api_reply_error(r, 429, "too many connections from uid %u", (unsigned)r->pc->uid);
	} else if (r->too_large) {
		api_reply_error(r, 413, "request body larger than the limit of %zu bytes", r->limit);
	} else if (s->workload) {
		api_workload_handle(r);
	} else {
		api_admin_handle(r);
	}
	if (!r->answered)
		api_reply_error(r, 500, "internal error: no answer");
	return MHD_YES;
}

/* ---- sockets and loop ---- */

static int api_bind(const char *path, mode_t mode, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		unlink(path); /* a stale socket: the store lock proved no daemon owns it */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chmod(path, mode) < 0 || listen(fd, 128) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

static void api_on_mhd(loop *l, int fd, uint32_t events, void *ud)
{
	struct api_server *s = ud;
	MHD_run(s->d);
}

static int api_prepare(loop *l, void *ud)
{
	struct api_server *s = ud;
	MHD_UNSIGNED_LONG_LONG ms;
	/* MHD watches its sockets edge-triggered: data it has read but not processed yet, and
	 * expired connection timeouts, show up only as a zero timeout, never as an event. */
	for (int i = 0; i < 8; i++) {
		if (MHD_get_timeout(s->d, &ms) != MHD_YES)
			return -1;
		if (ms > 0)
			return ms > 60000 ? 60000 : (int)ms;
		MHD_run(s->d);
	}
	return 0;
}

static void api_server_free(api *a, struct api_server *s)
{
	if (!s)
		return;
	if (s->d) {
		loop_del(a->loop, s->epfd);
		MHD_stop_daemon(s->d);
	}
	if (s->fd >= 0) {
		close(s->fd);
		unlink(s->path);
	}
	free(s);
}

static int api_server_new(api *a, bool workload, struct api_server **out)
{
	struct api_server *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->a = a;
	s->workload = workload;
	s->fd = -1;
	int n = snprintf(s->path, sizeof(s->path), "%s/%s", a->cfg.runtime_dir,
			 workload ? SECRETD_WORKLOAD_SOCK : SECRETD_ADMIN_SOCK);
	if (n < 0 || (size_t)n >= sizeof(s->path)) {
		free(s);
		return -ENAMETOOLONG;
	}
	int r = api_bind(s->path, workload ? 0666 : 0600, &s->fd);
	if (r < 0) {
		free(s);
		return r;
	}
	s->d = MHD_start_daemon(
		MHD_USE_EPOLL, 0, NULL, NULL, api_handler, s, MHD_OPTION_LISTEN_SOCKET, s->fd,
		MHD_OPTION_NOTIFY_CONNECTION, api_notify_conn, s, MHD_OPTION_NOTIFY_COMPLETED,
		api_completed, s, MHD_OPTION_CONNECTION_LIMIT, a->cfg.max_conns,
		MHD_OPTION_CONNECTION_TIMEOUT, a->cfg.idle_timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
	const union MHD_DaemonInfo *di =
		s->d ? MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	if (!di) {
		api_server_free(a, s);
		return -EIO;
	}
	s->epfd = di->epoll_fd;
	r = loop_add(a->loop, s->epfd, EPOLLIN, api_on_mhd, s);
	if (r == 0)
		r = loop_add_prepare(a->loop, api_prepare, s);
	if (r < 0) {
		api_server_free(a, s);
		return r;
	}
	*out = s;
	return 0;
}

int api_start(api **out, loop *l, store *s, mounts *m, struct metrics *met,
	      const struct api_config *cfg)
{
	api *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->loop = l;
	a->store = s;
	a->mounts = m;
	a->met = met;
	a->cfg = *cfg;
	if (!a->cfg.max_conns)
		a->cfg.max_conns = 256;
	if (!a->cfg.max_conns_per_uid)
		a->cfg.max_conns_per_uid = 32;
	if (!a->cfg.idle_timeout_s)
		a->cfg.idle_timeout_s = 30;
	if (!a->cfg.max_value)
		a->cfg.max_value = SECRETD_VALUE_MAX_DEFAULT;
	int r = api_server_new(a, false, &a->admin);
	if (r == 0)
		r = api_server_new(a, true, &a->workload);
	if (r < 0) {
		api_stop(a);
		return r;
	}
	*out = a;
	return 0;
}

void api_stop(api *a)
{
	if (!a)
		return;
	api_server_free(a, a->admin);
	api_server_free(a, a->workload);
	free(a);
}
