/* main() for every Check unit test: see runner.h. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/runner.h"

__attribute__((weak)) int unit_setup(void)
{
	return 0;
}

__attribute__((weak)) void unit_teardown(void)
{
}

__attribute__((weak)) bool unit_skipped(void)
{
	return false;
}

int main(void)
{
	if (unit_setup() != 0)
		return EXIT_FAILURE;
	SRunner *sr = srunner_create(unit_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	unit_teardown();
	if (failed)
		return EXIT_FAILURE;
	if (unit_skipped()) {
		const char *ci = getenv("CI");
		return ci && !strcmp(ci, "true") ? EXIT_FAILURE : 77;
	}
	return EXIT_SUCCESS;
}
