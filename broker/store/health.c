/* health.c: the /healthz probe of the store (the database file, its file system, a read from the
 * device, the write lock). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "broker/store/store_int.h"

/* The file in the state directory that /healthz reads past the page cache. */
#define STORE_HEALTH_FILE "health"
#define STORE_HEALTH_BYTES 4096

/* Reads STORE_HEALTH_FILE beside the database with O_DIRECT (where the file system supports it),
 * creating it first (one page, fsync'd). 0 or -errno.
 * Never the database file itself: SQLite locks it with POSIX record locks, which the kernel drops
 * for the whole process as soon as ANY descriptor of that file is closed. Opening and closing the
 * database behind SQLite's back let another process (an operator's sqlite3, a backup) believe it
 * was the last user, checkpoint and delete the WAL that the daemon still writes to: acknowledged
 * writes were lost at the next start. */
static int store_health_probe(const char *dbpath)
{
	char path[PATH_MAX];
	const char *slash = strrchr(dbpath, '/');
	int n = slash ? snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - dbpath), dbpath,
	                         STORE_HEALTH_FILE)
	              : snprintf(path, sizeof(path), "%s", STORE_HEALTH_FILE);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	void *page = NULL;
	if (posix_memalign(&page, STORE_HEALTH_BYTES, STORE_HEALTH_BYTES) != 0)
		return -ENOMEM;
	int r = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT | O_NOFOLLOW);
	if (fd < 0 && errno == EINVAL)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		int w = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (w < 0) {
			r = -errno;
			goto out;
		}
		memset(page, 0, STORE_HEALTH_BYTES);
		ssize_t wn = write(w, page, STORE_HEALTH_BYTES);
		int werr = wn < 0 ? errno : 0;
		if (wn == STORE_HEALTH_BYTES && fsync(w) < 0)
			werr = errno;
		close(w);
		if (wn != STORE_HEALTH_BYTES || werr) {
			unlink(path);
			r = werr ? -werr : -ENOSPC;
			goto out;
		}
		fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT | O_NOFOLLOW);
		if (fd < 0 && errno == EINVAL)
			fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	ssize_t got = pread(fd, page, STORE_HEALTH_BYTES, 0);
	if (got < 0)
		r = -errno;
	else if (got != STORE_HEALTH_BYTES)
		r = -EIO;
	close(fd);
out:
	free(page);
	return r;
}

int store_health(store *s)
{
	if (!s)
		return -EINVAL;
	const char *path = sqlite3_db_filename(s->db, "main");
	if (!path || !*path)
		return -EIO;
	/* The database we hold open must still be the file at its path (not removed or replaced:
	 * what we write would be lost at the next start). */
	int moved = 0;
	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK)
		return -EIO;
	if (moved)
		return -ESTALE;
	/* Room to write (a full file system fails every write, audit records included). statvfs by
	 * path: no descriptor of the database is ever opened here (see store_health_probe). */
	struct statvfs vs;
	if (statvfs(path, &vs) < 0)
		return -errno;
	if (vs.f_bavail == 0 || (vs.f_files && vs.f_favail == 0))
		return -ENOSPC;
	/* A read that reaches the device: a failing disk shows here, not only in the next write. */
	int r = store_health_probe(path);
	if (r < 0)
		return r;
	/* The write lock can be taken, and SQLite can read its tables. */
	r = store_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	int64_t c;
	r = store_pragma_int(s->db, "SELECT count(*) FROM secrets", &c);
	int r2 = store_exec(s->db, "ROLLBACK");
	return r < 0 ? r : r2;
}
