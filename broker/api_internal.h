/* api_internal: what api.c shares with the route files api_admin.c and api_workload.c. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "broker/api.h"
#include "broker/ident.h"

struct api_server;

/* Per connection. */
struct api_conn {
	struct api_server *srv;
	bool ident_ok;
	int ident_rc;       /* why identification failed (-errno) */
	struct ident who;   /* workload socket: the connecting process */
	uid_t uid;
	bool over_limit;
};

/* Per request. */
struct api_req {
	api *a;
	struct api_server *srv;
	struct MHD_Connection *conn;
	struct api_conn *pc;
	const char *method;
	const char *url;
	uint8_t *body; /* crypt_alloc'd: may hold a secret */
	size_t len, cap, limit;
	bool too_large;
	bool answered;
};

struct api {
	loop *loop;
	store *store;
	mounts *mounts;
	struct metrics *met;
	struct api_config cfg;
	struct api_server *admin, *workload;
};

/* Replies with a JSON body (steals the reference). */
void api_reply_json(struct api_req *r, unsigned status, json_t *body);
/* Replies {"error": "..."} (printf-style; never put a secret value in it). */
void api_reply_error(struct api_req *r, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Replies with raw secret bytes (takes ownership of crypt_alloc'd val; wiped when sent). */
void api_reply_secret(struct api_req *r, uint8_t *val, size_t len, uint64_t version);
/* Replies with text (copied). */
void api_reply_text(struct api_req *r, unsigned status, const char *ctype, const char *text);
/* Maps a store/mounts errno to an HTTP status and replies with msg: what failed. */
void api_reply_errno(struct api_req *r, int err, const char *what);
/* Parses the request body as a JSON object; replies 400 and returns NULL if it is not one. */
json_t *api_body_json(struct api_req *r);
/* The value of query argument key, or NULL. */
const char *api_query(struct api_req *r, const char *key);

/* Route handlers: each answers the request (exactly once). */
void api_admin_handle(struct api_req *r);
void api_workload_handle(struct api_req *r);
