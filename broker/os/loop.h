/* loop: the daemon's one epoll event loop (fds + a per-iteration prepare hook for timeouts). */
#pragma once
#include <stdbool.h>
#include <stdint.h>

typedef struct loop loop;
/* Called when fd has events (EPOLLIN, ...). */
typedef void (*loop_fd_cb)(loop *l, int fd, uint32_t events, void *ud);
/* Called before each wait; returns the longest wait in ms it allows (-1 = no limit). */
typedef int (*loop_prepare_cb)(loop *l, void *ud);

/* 0 or -errno; *out freed with loop_free. */
int loop_new(loop **out);
void loop_free(loop *l);
/* Watches fd (events: EPOLLIN etc.). -EEXIST if already watched. */
int loop_add(loop *l, int fd, uint32_t events, loop_fd_cb cb, void *ud);
/* Stops watching fd (safe from inside a callback, also for fds later in the same batch). */
int loop_del(loop *l, int fd);
/* Adds a prepare hook (at most LOOP_PREPARE_MAX). */
int loop_add_prepare(loop *l, loop_prepare_cb cb, void *ud);
/* Runs until loop_quit (then cleared: a later call runs again); 0 or -errno from epoll. */
int loop_run(loop *l);
void loop_quit(loop *l);
