/* schema: the SQL migrations, embedded at build time (schema/NNN_name.sql, applied in order). */
#pragma once
#include <stddef.h>

struct schema_migration {
	int version;      /* 1-based; PRAGMA user_version after it is applied */
	const char *name; /* file name, for messages */
	const char *sql;  /* the whole script, run inside one transaction */
};

extern const struct schema_migration schema_migrations[];
extern const size_t schema_migrations_count;
