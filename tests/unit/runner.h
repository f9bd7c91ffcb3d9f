/* The one main() of every Check unit test (tests/unit/runner.c). A test file defines
 * unit_suite() and, when it needs them, the optional hooks below (weak in the runner):
 *   unit_setup()      before the suite is built; non-zero aborts with exit 1.
 *   unit_teardown()   after the run.
 *   unit_skipped()    true when the machine lacked something the suite needs: the run then exits
 *                     77 (skip), or 1 under CI=true, where a skip fails. */
#pragma once
#include <check.h>
#include <stdbool.h>

Suite *unit_suite(void);
int unit_setup(void);
void unit_teardown(void);
bool unit_skipped(void);
