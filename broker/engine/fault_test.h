/* fault_test: for tests only (unit tests, and the daemon's SECRETD_TEST_FAULTS=1 mode): the hook
 * engine_fault() asks. It returns 0 (no fault) or the -errno to inject at point p. */
#pragma once
#include "broker/engine/fault.h"

extern int (*engine_fault_hook)(enum engine_fault_point p, void *ud);
extern void *engine_fault_ud;
