/* benchlib: timing, statistics and a minimal HTTP/1.1 client over unix sockets for the
 * benchmarks. Functions return 0 or a negative errno unless said otherwise. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds (system-wide: comparable across processes and namespaces). */
uint64_t bl_now(void);
/* Sorts v[0..n) in place and returns the q-quantile (0..1, nearest rank). 0 when n == 0. */
uint64_t bl_quantile(uint64_t *v, size_t n, double q);
/* Connects a SOCK_STREAM socket to a unix path; the fd or a negative errno. */
int bl_connect(const char *path);
/* Sends one request (body may be NULL) on fd and reads the answer into body (at most cap bytes,
 * NUL-terminated when room). *status gets the HTTP status, the return is the body length or a
 * negative errno. close_after adds "Connection: close". */
long bl_http(int fd, const char *method, const char *path, const void *body, size_t len,
             int close_after, int *status, char *out, size_t cap);
/* bl_http on a new connection, closed afterwards. */
long bl_http1(const char *sock, const char *method, const char *path, const void *body, size_t len,
              int *status, char *out, size_t cap);
/* Prints "label n=N p50=X p99=Y max=Z" (microseconds) of samples v[0..n) (sorted in place). */
void bl_report(const char *label, uint64_t *v, size_t n);
