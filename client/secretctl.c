/* secretctl: the operator's and the workload's command line for secretd: the global options, the
 * command table and its usage text, and the dispatch to a command (client/ctl_*.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "client/cdi.h"
#include "client/ctl.h"
#include "client/migrate.h"

#ifndef SECRETD_VERSION
#define SECRETD_VERSION "unknown"
#endif

static int ctl_cmd_scan(struct ctl *c)
{
	return migrate_scan_main(c->argc, c->argv, c->socket, c->json);
}

static int ctl_cmd_import_env(struct ctl *c)
{
	return migrate_import_env_main(c->argc, c->argv, c->socket, c->json);
}

static int ctl_cmd_exec(struct ctl *c)
{
	return migrate_exec_main(c->argc, c->argv, c->socket);
}

static int ctl_cmd_cdi(struct ctl *c)
{
	return cdi_main(c->argc, c->argv, c->socket);
}

static int ctl_cmd_help(struct ctl *c);
static int ctl_cmd_completion(struct ctl *c);
static void ctl_usage(FILE *f);

static const struct ctl_cmd ctl_cmds[] = {
    {"put",
     "NAME [--from-file F] [--keep N] [--expires DUR | --keep-expiry] [--allow-empty] "
     "[--label KEY=VALUE]...",
     "store a new version (value from stdin or a file; never empty unless --allow-empty)", false,
     ctl_cmd_put},
    {"get", "NAME [--version N]", "print a value (current or version N)", false, ctl_cmd_get},
    {"ls", "[--self] [--filter KEY=VALUE]... [--format TEMPLATE]",
     "list secrets (--self: those granted to this container)", false, ctl_cmd_ls},
    {"versions", "NAME", "list a secret's versions", false, ctl_cmd_versions},
    {"rm", "NAME", "delete a secret, its versions and its exact grants", false, ctl_cmd_rm},
    {"label", "NAME [KEY=VALUE | KEY-]...",
     "set (KEY=VALUE) or remove (KEY-) a secret's labels; with none, print them", false,
     ctl_cmd_label},
    {"key", "rotate [--no-wait] | status",
     "add a master key generation and re-wrap every data key (in batches); show generations", false,
     ctl_cmd_key},
    {"daemon", "upgrade [--no-wait]", "upgrade the daemon in place (new binary, every mount kept)",
     false, ctl_cmd_daemon},
    {"cluster", "status",
     "cluster mode: the leader, this node's watch, applied revision and lag, refusals, last error",
     false, ctl_cmd_cluster},
    {"rollback", "NAME VERSION", "make an old version's value current (as a new version)", false,
     ctl_cmd_rollback},
    {"rotate",
     "NAME --generate [--length N] [--charset C] [--print] [--every DUR [--exec CMD]] "
     "[--keep-expiry]",
     "a new random value made by the daemon, now or on a schedule (or a put from a file)", false,
     ctl_cmd_rotate},
    {"schedules", "", "list expiries and rotation schedules", false, ctl_cmd_schedules},
    {"audit", "[verify] [--since T] [--follow] [--cluster]",
     "print the audit trail, or check its hash chain (exit 1 when broken)", false, ctl_cmd_audit},
    {"grant", "NAME SELECTOR [--path P] [--mode M] [--uid U] [--gid G] [--previous]",
     "give containers matching SELECTOR a secret (or PREFIX/*)", false, ctl_cmd_grant},
    {"revoke", "NAME SELECTOR", "take a grant back (mounts update at once)", false, ctl_cmd_revoke},
    {"grants", "", "list grants", false, ctl_cmd_grants},
    {"containers", "", "list the containers the broker knows", false, ctl_cmd_containers},
    {"whoami", "", "(in a container) the identity the broker sees", true, ctl_cmd_whoami},
    {"read", "NAME | tmpl:NAME", "(in a container) print a granted secret or rendered file", true,
     ctl_cmd_read},
    {"mount", "[PATH]", "(in a container) mount my secrets at PATH (/run/secrets)", true,
     ctl_cmd_mount},
    {"scan", "PATH... [--proc]", MIGRATE_SCAN_HELP, false, ctl_cmd_scan},
    {"import-env", "(FILE | --compose F --service S) --prefix P [--grant SEL]", MIGRATE_IMPORT_HELP,
     false, ctl_cmd_import_env},
    {"exec", "[--dir D] [--env NAME=SECRET]... -- CMD [ARGS]", MIGRATE_EXEC_HELP, true,
     ctl_cmd_exec},
    {"cdi", CDI_ARGS, CDI_HELP, false, ctl_cmd_cdi},
    {"template", "put NAME [--from-file F] | ls | get NAME | versions NAME | rm NAME",
     "rendered files' templates (grant one as tmpl:NAME)", false, ctl_cmd_template},
    {"inspect", "NAME", "one JSON object: versions, times, expiry, schedule, matching grants",
     false, ctl_cmd_inspect},
    {"completion", "bash|zsh|fish", "print a shell completion script", false, ctl_cmd_completion},
    {"help", "[COMMAND | --commands]", "show a command's help (or list the commands)", false,
     ctl_cmd_help},
};

#define CTL_NCMDS (sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

static const struct ctl_cmd *ctl_cmd_find(const char *name)
{
	for (size_t k = 0; k < CTL_NCMDS; k++)
		if (strcmp(name, ctl_cmds[k].name) == 0)
			return &ctl_cmds[k];
	return NULL;
}

/* COMMAND --help: the long help (ctl_help.c), or the table's line when there is none. */
static void ctl_cmd_usage(const struct ctl_cmd *cmd)
{
	const char *h = ctl_help_text(cmd->name);
	if (h)
		fputs(h, stdout);
	else
		printf("Usage: secretctl %s %s\n  %s\n", cmd->name, cmd->args, cmd->help);
	printf(
	    "\nGlobal flags: --socket PATH, --json, --help, --version (see secretctl --help).\n");
}

static int ctl_cmd_help(struct ctl *c)
{
	if (c->argc == 1) {
		ctl_usage(stdout);
		return 0;
	}
	if (c->argc == 2 && strcmp(c->argv[1], "--commands") == 0) {
		for (size_t k = 0; k < CTL_NCMDS; k++)
			printf("%s\n", ctl_cmds[k].name);
		return 0;
	}
	const struct ctl_cmd *cmd = c->argc == 2 ? ctl_cmd_find(c->argv[1]) : NULL;
	if (!cmd)
		return client_fail(2, "%s: no such command (see secretctl help)",
		                   c->argc == 2 ? c->argv[1] : "help");
	ctl_cmd_usage(cmd);
	return 0;
}

static int ctl_cmd_completion(struct ctl *c)
{
	if (c->argc != 2)
		return client_fail(2, "usage: secretctl completion bash|zsh|fish");
	return ctl_completion(c->argv[1], ctl_cmds, CTL_NCMDS);
}

static void ctl_usage(FILE *f)
{
	fprintf(f, "usage: secretctl [--socket PATH] [--json] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < CTL_NCMDS; i++)
		fprintf(f, "  %-10s %-28s %s\n", ctl_cmds[i].name, ctl_cmds[i].args,
		        ctl_cmds[i].help);
	fprintf(f, "\nThe socket is --socket, else $SECRETD_SOCKET, else /run/secretd/admin.sock\n"
	           "(workload commands: $SECRETD_WORKLOAD_SOCKET, $SECRETD_SOCKET, then\n"
	           "/run/secretd/workload.sock). Values are never taken from the command line.\n"
	           "'secretctl COMMAND --help' (or 'secretctl help COMMAND') shows one command:\n"
	           "its flags, examples and exit status.\n");
}

int main(int argc, char **argv)
{
	struct ctl c = {0};
	int i = 1;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--socket") && i + 1 < argc)
			c.socket = argv[++i];
		else if (!strncmp(argv[i], "--socket=", 9))
			c.socket = argv[i] + 9;
		else if (!strcmp(argv[i], "--json"))
			c.json = true;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			ctl_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("secretctl %s\n", SECRETD_VERSION);
			return 0;
		} else
			break;
	}
	if (i >= argc) {
		ctl_usage(stderr);
		return 2;
	}
	/* Options after the command: --json and --socket anywhere, --help for the command. */
	char **args = calloc((size_t)(argc - i) + 1, sizeof(char *));
	if (!args)
		return ctl_fail("out of memory");
	int n = 0;
	bool help = false;
	for (int k = i; k < argc; k++) {
		if (!strcmp(argv[k], "--")) {
			/* Everything after "--" belongs to the command (exec's CMD ARGS). */
			while (k < argc)
				args[n++] = argv[k++];
			break;
		}
		if (!strcmp(argv[k], "--json"))
			c.json = true;
		else if (!strcmp(argv[k], "--socket") && k + 1 < argc)
			c.socket = argv[++k];
		else if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h"))
			help = true;
		else
			args[n++] = argv[k];
	}
	c.argc = n;
	c.argv = args;
	for (size_t k = 0; k < CTL_NCMDS; k++) {
		if (strcmp(args[0], ctl_cmds[k].name) != 0)
			continue;
		if (help) {
			ctl_cmd_usage(&ctl_cmds[k]);
			free(args);
			return 0;
		}
		if (sodium_init() < 0)
			return ctl_fail("libsodium failed to initialise");
		int rc = ctl_cmds[k].run(&c);
		free(args);
		return rc == 0 && c.unapplied ? CTL_EXIT_UNAPPLIED : rc;
	}
	int rc = ctl_fail("unknown command '%s' (see secretctl --help)", args[0]);
	free(args);
	return rc == 1 ? 2 : rc;
}
