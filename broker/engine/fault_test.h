/* fault_test: for tests only (unit tests, and the daemon's SECRETD_TEST_FAULTS=1 mode): the hook
 * engine_fault() asks. It returns 0 (no fault) or the -errno to inject at point p. */
#pragma once
#include "broker/engine/fault.h"

extern int (*engine_fault_hook)(enum engine_fault_point p, void *ud);
extern void *engine_fault_ud;

/* Installs a hook that injects -EIO at a point while dir holds a regular file named after it
 * (view_inputs, audit_record) owned by the daemon's uid. dir must be absolute, a directory of
 * that uid with no group or other permissions: 0, -EINVAL, -EPERM or open's -errno. Called by
 * the daemon only when SECRETD_TEST_FAULTS=1 and SECRETD_TEST_FAULT_DIR are both set. */
int engine_fault_use_dir(const char *dir);
