/* migrate: the secretctl commands that move hard-coded ENV secrets into secretd.
 * Each takes argv[0] = the command name and the command's own arguments (the global --json and
 * --socket already removed; `socket` is the --socket value or NULL) and returns the exit code. */
#pragma once
#include <stdbool.h>

#define MIGRATE_SCAN_USAGE "scan PATH... [--proc]"
#define MIGRATE_SCAN_HELP "find likely secrets in Dockerfiles, compose, .env, k8s YAML, processes"
#define MIGRATE_IMPORT_USAGE                                                                       \
	"import-env (FILE | --compose FILE --service S) --prefix P [--grant SELECTOR]..."
#define MIGRATE_IMPORT_HELP "store a file's secret-looking variables as P/NAME (idempotent)"
#define MIGRATE_EXEC_USAGE "exec [--dir D] [--env NAME=SECRET]... -- CMD [ARGS]"
#define MIGRATE_EXEC_HELP "(in a container) run CMD with secrets in its environment"

/* scan PATH... [--proc]: prints "file:line: VARIABLE: reason: masked" per finding (a JSON array
 * with json). 1 when something was found, 0 when clean, 2 on usage or I/O errors. */
int migrate_scan_main(int argc, char **argv, const char *socket, bool json);

/* import-env: stores each secret-looking variable of a .env file / Dockerfile / compose service
 * as P/NAME over the admin socket (PUT only when the value differs), grants it with --grant,
 * then prints the NAME_FILE lines to add and the lines to delete. 0 done, 1 something refused or
 * failed, 2 usage or unreadable input. */
int migrate_import_env_main(int argc, char **argv, const char *socket, bool json);

/* exec: reads each SECRET from D/SECRET (D = /run/secrets) or else the workload socket, sets
 * NAME to it and execvp's CMD; returns only on failure: 1 (a secret unreadable), 2 (usage),
 * 126 (CMD not executable), 127 (CMD not found). */
int migrate_exec_main(int argc, char **argv, const char *socket);
