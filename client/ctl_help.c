/* secretctl: the long help of each command (secretctl COMMAND --help, secretctl help COMMAND):
 * usage, what it does, flags, examples, exit status. One entry per command of the table in
 * secretctl.c; test_cli walks that table and fails for a command without an entry here. */
#include <string.h>

#include "client/ctl.h"

#define CTL_HELP_SELECTORS                                                                         \
	"Selectors (which containers get it):\n"                                                   \
	"  name:GLOB          the container's name (io.secretd.name, Docker --name), fnmatch "     \
	"glob\n"                                                                                   \
	"  label:KEY=VALUE    a container label or annotation, exact\n"                            \
	"  id:PREFIX          a container id prefix\n"                                             \
	"  cgroup:GLOB        the container's cgroup path, fnmatch glob\n"                         \
	"  runtime:NAME       runc, crun, podman, docker, containerd, ...\n"                       \
	"  uid:N              host processes (not containers) running as uid N\n"

#define CTL_HELP_WHEN                                                                              \
	"Durations: 90s, 15m, 1h30m, 7d, 2d12h (units d h m s, largest first) or plain seconds.\n" \
	"Times: RFC 3339 (2026-12-24T10:00:00Z, 2026-12-24T11:00:00+01:00), @UNIX, now, now+1h,\n" \
	"now-15m.\n"

#define CTL_HELP_CHANGE_EXIT                                                                       \
	"Exit status: 0 done; 1 failed (\"secretctl: NAME: no such secret\" when it is not\n"      \
	"there); 3 stored, but not every running container could be updated (they are failed\n"    \
	"closed until it can: see secretctl containers).\n"

#define CTL_HELP_READ_EXIT                                                                         \
	"Exit status: 0 done; 1 failed (\"secretctl: NAME: no such secret\" when it is not\n"      \
	"there).\n"

static const struct ctl_help ctl_helps[] = {
    {"put",
     "Usage: secretctl put NAME [--from-file F] [--keep N] [--expires WHEN | --keep-expiry]\n"
     "                     [--allow-empty] [--label KEY=VALUE]...\n\n"
     "Store a new version of NAME. The value comes from stdin (or --from-file), never from the\n"
     "command line; an empty value is refused unless --allow-empty. A new value clears the\n"
     "secret's expiry unless --expires or --keep-expiry says otherwise.\n\n"
     "Flags:\n"
     "  --from-file F      read the value from file F instead of stdin\n"
     "  --keep N           keep N versions of NAME (1..1000; default 10)\n"
     "  --expires WHEN     delete NAME at WHEN: a duration from now or a time\n"
     "  --keep-expiry      keep the expiry NAME has\n"
     "  --allow-empty      store an empty value\n"
     "  --label KEY=VALUE  set a label on NAME (repeatable; other labels stay): see\n"
     "                     secretctl label --help\n\n" CTL_HELP_WHEN "\nExamples:\n"
     "  secretctl put db/password < password.txt\n"
     "  secretctl put db/password --label team=payments --label env=prod < pw.txt\n"
     "  openssl rand -hex 32 | secretctl put api/token --expires 7d\n"
     "  secretctl put tls/key --from-file server.key --expires "
     "2026-12-24T10:00:00Z\n\n" CTL_HELP_CHANGE_EXIT},
    {"get", "Usage: secretctl get NAME [--version N]\n\n"
            "Print NAME's current value (or version N's) on stdout, byte for byte.\n\n"
            "Flags:\n"
            "  --version N        an older kept version (see secretctl versions NAME)\n\n"
            "Examples:\n"
            "  secretctl get db/password\n"
            "  secretctl get db/password --version 3 > old.txt\n\n" CTL_HELP_READ_EXIT},
    {"ls",
     "Usage: secretctl ls [--self] [--filter KEY=VALUE]... [--format TEMPLATE|json]\n\n"
     "List the secrets: name, current version, versions kept, last update, expiry.\n\n"
     "Flags:\n"
     "  --self             (in a container) the names granted to this container\n"
     "  --filter KEY=VALUE only secrets that match: name=GLOB (db/*), expires=true|false,\n"
     "                     label=KEY (has the label), label=KEY=VALUE (with that value);\n"
     "                     several filters must all match\n"
     "  --format TEMPLATE  one line per secret from a template of {{.Field}}s: Name, Version,\n"
     "                     Versions, Created, Updated, Expires (RFC 3339, or \"\"),\n"
     "                     CreatedUnix, UpdatedUnix, ExpiresUnix, Labels (KEY=VALUE,...);\n"
     "                     {{index .Labels \"KEY\"}}, {{json .Labels}}, {{json .}};\n"
     "                     --format json prints a JSON array\n\n"
     "Examples:\n"
     "  secretctl ls\n"
     "  secretctl ls --filter name=db/* --filter expires=true\n"
     "  secretctl ls --filter label=team=payments --format '{{.Name}} {{index .Labels \"env\"}}'\n"
     "  secretctl ls --format '{{.Name}} {{.Version}}'\n\n"
     "Exit status: 0 done; 1 failed.\n"},
    {"versions",
     "Usage: secretctl versions NAME\n\n"
     "List NAME's kept versions: number, size, master key generation, creation time, and which\n"
     "is current; and its expiry.\n\n"
     "Flags: none (besides the global --json, --socket)\n\n"
     "Examples:\n"
     "  secretctl versions db/password\n\n" CTL_HELP_READ_EXIT},
    {"inspect",
     "Usage: secretctl inspect NAME\n\n"
     "Print one JSON object about NAME: name, labels, versions, current, created, updated,\n"
     "expires, schedule, and the grants that match it (times as RFC 3339 strings and *_unix\n"
     "numbers).\n\n"
     "Flags: none (besides the global --socket)\n\n"
     "Examples:\n"
     "  secretctl inspect db/password\n"
     "  secretctl inspect db/password | jq -r .grants[].selector\n\n" CTL_HELP_READ_EXIT},
    {"label",
     "Usage: secretctl label NAME [KEY=VALUE | KEY-]...\n\n"
     "Set (KEY=VALUE) or remove (KEY-) labels on the secret NAME, as kubectl label does; with\n"
     "no KEY, print its labels. Labels are metadata for people and tools (ls --filter\n"
     "label=KEY=VALUE, ls --format '{{index .Labels \"KEY\"}}', inspect): they are not secret,\n"
     "select nothing (grants select containers, not secrets) and change no container's view.\n"
     "Each change is audited. Keys: 1..128 bytes of letters, digits, . _ - /, beginning and\n"
     "ending with a letter or digit; values: 0..256 printable ASCII characters; at most 64\n"
     "labels on a secret.\n\n"
     "Flags: none (besides the global --json, --socket)\n\n"
     "Examples:\n"
     "  secretctl label db/password team=payments env=prod\n"
     "  secretctl label db/password env-\n"
     "  secretctl label db/password\n\n" CTL_HELP_READ_EXIT},
    {"rm", "Usage: secretctl rm NAME\n\n"
           "Delete NAME, every version of it and its exact grants (pattern grants stay). Running\n"
           "containers lose the file at once.\n\n"
           "Flags: none (besides the global --json, --socket)\n\n"
           "Examples:\n"
           "  secretctl rm old/token\n\n" CTL_HELP_CHANGE_EXIT},
    {"key",
     "Usage: secretctl key rotate [--no-wait]\n"
     "       secretctl key status\n\n"
     "rotate adds a master key generation and re-wraps every data key with it, in batches\n"
     "(values stay readable throughout); status shows the generations and a rotation's\n"
     "progress. (The master key file or passphrase itself is changed with secretd rekey.)\n\n"
     "Flags:\n"
     "  --no-wait          start the rotation and return; follow it with key status\n\n"
     "Examples:\n"
     "  secretctl key rotate\n"
     "  secretctl key status --json\n\n"
     "Exit status: 0 done; 1 failed or the rotation stopped on an error.\n"},
    {"cluster",
     "Usage: secretctl cluster status\n\n"
     "In cluster mode (secretd run --etcd ... --cluster NAME; docs/cluster.md): the cluster's\n"
     "name and etcd endpoints, whether this node's watch is open, the etcd revision it has\n"
     "applied, rows applied and refused (tampered, rolled back), writes refused (etcd\n"
     "unreachable, conflicts), and the last error. On a single node: says so.\n\n"
     "Flags: none (besides the global --json, --socket)\n\n"
     "Examples:\n"
     "  secretctl cluster status\n"
     "  secretctl cluster status --json\n\n" CTL_HELP_READ_EXIT},
    {"daemon",
     "Usage: secretctl daemon upgrade [--no-wait]\n\n"
     "Upgrade the running daemon in place: its keeper re-execs the secretd binary (the file\n"
     "now installed at its path) and starts a new daemon process, which takes over every\n"
     "container's mount and both sockets. Containers see a pause, never an error; requests\n"
     "made meanwhile wait. The same as SIGHUP to secretd run (systemctl reload secretd).\n\n"
     "Flags:\n"
     "  --no-wait          return once the daemon accepted; do not wait for the new process\n\n"
     "Examples:\n"
     "  secretctl daemon upgrade\n\n"
     "Exit status: 0 upgraded (or accepted, --no-wait); 1 refused (a daemon started with\n"
     "--no-keeper answers 409: restart it instead) or no new daemon process within 60 s.\n"},
    {"rollback",
     "Usage: secretctl rollback NAME VERSION\n\n"
     "Make VERSION's value current again, as a new version (history is never rewritten). The\n"
     "expiry is kept.\n\n"
     "Flags: none (besides the global --json, --socket)\n\n"
     "Examples:\n"
     "  secretctl versions db/password\n"
     "  secretctl rollback db/password 3\n\n"
     "Exit status: 0 done; 1 failed (\"secretctl: NAME: no such version N\"); 3 stored, not\n"
     "every container updated.\n"},
    {"rotate",
     "Usage: secretctl rotate NAME --generate [--length N] [--charset C] [--print]\n"
     "                        [--keep-expiry]\n"
     "       secretctl rotate NAME --every DUR --generate [--length N] [--charset C]\n"
     "                        [--exec CMD]\n"
     "       secretctl rotate NAME --every 0\n"
     "       secretctl rotate NAME [--from-file F] [--allow-empty] [--keep-expiry]\n\n"
     "A new random value made by the daemon, now or on a schedule; without --generate, a put\n"
     "of the value on stdin or in a file.\n\n"
     "Flags:\n"
     "  --generate         the daemon makes the value\n"
     "  --length N         characters (1..4096; default 32)\n"
     "  --charset C        alnum (default), hex, base64 or ascii\n"
     "  --print            print the new value\n"
     "  --every DUR        rotate on a schedule (a duration; 0 removes the schedule)\n"
     "  --exec CMD         on each scheduled rotation run CMD (sh -c) with the value on stdin\n"
     "  --from-file F      the new value from file F\n"
     "  --allow-empty      store an empty value\n"
     "  --keep-expiry      keep the expiry NAME has\n\n" CTL_HELP_WHEN "\nExamples:\n"
     "  secretctl rotate db/password --generate --length 40\n"
     "  secretctl rotate api/token --every 1h30m --generate --exec 'systemctl reload app'\n"
     "  secretctl rotate api/token --every 0\n\n" CTL_HELP_CHANGE_EXIT},
    {"schedules",
     "Usage: secretctl schedules\n\n"
     "List expiries and rotation schedules: name, expiry, period, next rotation, command.\n\n"
     "Flags: none (besides the global --json, --socket)\n\n"
     "Examples:\n"
     "  secretctl schedules\n\n"
     "Exit status: 0 done; 1 failed.\n"},
    {"audit",
     "Usage: secretctl audit [--since SEQ|DURATION|TIME] [--follow] [--cluster]\n"
     "       secretctl audit verify\n\n"
     "Print the audit trail (who read or changed what, when, with which program), or check its\n"
     "hash chain and signed checkpoint.\n\n"
     "Flags:\n"
     "  --since S          from sequence number S, from a duration ago (10m), or from a time\n"
     "  --follow           keep printing new records\n"
     "  --cluster          cluster mode: only the cluster's changes (this node's own and\n"
     "                     those applied from etcd), each with the node it came from\n"
     "                     (ORIGIN)\n\n" CTL_HELP_WHEN "\nExamples:\n"
     "  secretctl audit --since 1h\n"
     "  secretctl audit --since 2026-12-24T10:00:00Z --json\n"
     "  secretctl audit verify\n"
     "  secretctl audit --cluster --since 1h\n\n"
     "Exit status: 0 done; 1 failed, or (verify) the chain is broken or the audit cannot be\n"
     "written now.\n"},
    {"grant",
     "Usage: secretctl grant NAME|PREFIX/*|* SELECTOR [--path P] [--mode M] [--uid U]\n"
     "                       [--gid G] [--previous] [--replace]\n\n"
     "Give the containers that SELECTOR matches a secret (NAME), every secret under PREFIX/\n"
     "(PREFIX/*) or every secret (*): a file in their /run/secrets, updated live. A grant that\n"
     "names no secret yet is stored (it applies once one is put) and warned "
     "about.\n\n" CTL_HELP_SELECTORS "\nFlags:\n"
     "  --path P           the file's path in the mount (default: the secret's name)\n"
     "  --mode M           octal file mode (default 0400)\n"
     "  --uid U, --gid G   the file's owner (default: the container's user)\n"
     "  --previous         also show NAME.previous, the version before the current one\n"
     "  --replace          replace an existing grant of NAME to SELECTOR\n\n"
     "Examples:\n"
     "  secretctl grant db/password name:web\n"
     "  secretctl grant 'tls/*' label:tier=frontend --mode 0440 --gid 101\n"
     "  secretctl grant db/password name:web --path db.pass --replace\n"
     "  secretctl grant tmpl:app/db-url name:web --path db.url   (a template: see template)\n\n"
     "Exit status: 0 done (also with the warning); 1 failed; 3 stored, not every container\n"
     "updated.\n"},
    {"revoke",
     "Usage: secretctl revoke NAME SELECTOR\n\n"
     "Take a grant back: the file leaves the matching containers at once, and open handles on\n"
     "it stop reading.\n\n" CTL_HELP_SELECTORS "\nFlags: none (besides the global --json, "
     "--socket)\n\n"
     "Examples:\n"
     "  secretctl revoke db/password name:web\n\n"
     "Exit status: 0 done; 1 failed (\"secretctl: NAME to SELECTOR: no such grant\"); 3 taken\n"
     "back, not every container updated.\n"},
    {"grants", "Usage: secretctl grants\n\n"
               "List the grants: secret or pattern, selector, path, mode, owner.\n\n"
               "Flags: none (besides the global --json, --socket)\n\n"
               "Examples:\n"
               "  secretctl grants --json\n\n"
               "Exit status: 0 done; 1 failed.\n"},
    {"containers",
     "Usage: secretctl containers\n\n"
     "List the containers the broker knows: id, runtime, name, how it was identified, mount,\n"
     "files, opens; FAILED-CLOSED when its view could not be applied.\n\n"
     "Flags: none (besides the global --json, --socket)\n\n"
     "Examples:\n"
     "  secretctl containers\n\n"
     "Exit status: 0 done; 1 failed.\n"},
    {"whoami",
     "Usage: secretctl whoami\n\n"
     "(In a container, on the workload socket) the identity the broker sees for this process:\n"
     "runtime, container id and name, cgroup, pid, uid.\n\n"
     "Flags: none (besides the global --json, --socket)\n\n"
     "Examples:\n"
     "  secretctl whoami\n\n"
     "Exit status: 0 done; 1 failed.\n"},
    {"read",
     "Usage: secretctl read NAME | tmpl:NAME\n\n"
     "(In a container, on the workload socket) print a secret granted to this container, or\n"
     "(tmpl:NAME) the rendering of template NAME as this container's mount shows it. One that\n"
     "is not there and one that is not granted get the same answer.\n\n"
     "Flags: none (besides the global --socket)\n\n"
     "Examples:\n"
     "  secretctl read db/password\n"
     "  secretctl read tmpl:app/db-url\n\n" CTL_HELP_READ_EXIT},
    {"mount", "Usage: secretctl mount [PATH]\n\n"
              "(In a container, on the workload socket) mount this container's secrets at PATH\n"
              "(default /run/secrets), for runtimes without hooks.\n\n"
              "Flags: none (besides the global --json, --socket)\n\n"
              "Examples:\n"
              "  secretctl mount /run/secrets\n\n"
              "Exit status: 0 done; 1 failed.\n"},
    {"scan",
     "Usage: secretctl scan PATH... [--proc]\n\n"
     "Find likely secrets in Dockerfiles, compose files, .env files, Kubernetes YAML and (with\n"
     "--proc) the environment of running processes; values are shown masked.\n\n"
     "Flags:\n"
     "  --proc             also scan /proc/*/environ\n\n"
     "Examples:\n"
     "  secretctl scan . --proc\n"
     "  secretctl scan docker-compose.yml --json\n\n"
     "Exit status: 0 nothing found; 1 something found; 2 usage or I/O error.\n"},
    {"import-env",
     "Usage: secretctl import-env FILE --prefix P [--grant SELECTOR]...\n"
     "       secretctl import-env --compose FILE --service S --prefix P [--grant SELECTOR]...\n\n"
     "Store each secret-looking variable of a .env file, Dockerfile or compose service as\n"
     "P/NAME (a put only when the value differs), grant them, and print the lines to change.\n\n"
     "Flags:\n"
     "  --prefix P         the secrets' names are P/VARIABLE\n"
     "  --compose FILE     read a docker-compose file ...\n"
     "  --service S        ... and this service's environment\n"
     "  --grant SELECTOR   grant P/* to SELECTOR (repeatable)\n\n"
     "Examples:\n"
     "  secretctl import-env .env --prefix app --grant name:app\n"
     "  secretctl import-env --compose docker-compose.yml --service web --prefix web\n\n"
     "Exit status: 0 done; 1 something refused or failed; 2 usage or unreadable input.\n"},
    {"exec", "Usage: secretctl exec [--dir D] [--env NAME=SECRET]... -- CMD [ARGS]\n\n"
             "(In a container) run CMD with secrets in its environment: each SECRET is read from\n"
             "D/SECRET (default /run/secrets) or else the workload socket.\n\n"
             "Flags:\n"
             "  --dir D            where the mounted secrets are (default /run/secrets)\n"
             "  --env NAME=SECRET  set variable NAME to SECRET's value (repeatable)\n\n"
             "Examples:\n"
             "  secretctl exec --env DB_PASSWORD=db/password -- ./server\n\n"
             "Exit status: CMD's; 1 a secret unreadable; 2 usage; 126 CMD not executable; 127 CMD\n"
             "not found.\n"},
    {"cdi",
     "Usage: secretctl cdi generate [--name NAME]... [--hook PATH] [--output FILE]\n\n"
     "Write a CDI spec (Container Device Interface) for this install: podman run --device\n"
     "secretd.io/secrets=NAME (and CRI-O, containerd 1.7+, Docker 25+) then runs secretd's\n"
     "hooks with no hooks directory.\n\n"
     "Flags:\n"
     "  --name NAME        a device that names the container NAME (repeatable; without it a\n"
     "                     device \"default\")\n"
     "  --hook PATH        the OCI hook's path (default: the installed one)\n"
     "  --output FILE      write FILE (e.g. /etc/cdi/secretd.json) instead of stdout\n\n"
     "Examples:\n"
     "  secretctl cdi generate --name web --output /etc/cdi/secretd.json\n\n"
     "Exit status: 0 done; 1 failed; 2 usage.\n"},
    {"template",
     "Usage: secretctl template put NAME [--from-file F]\n"
     "       secretctl template ls | get NAME [--version N] | versions NAME | rm NAME\n\n"
     "Rendered files: a template is a file built from several secrets, e.g.\n"
     "  postgres://app:{{ secret \"db/password\" | urlquery }}@db:5432/app\n"
     "rendered in memory in the containers' mounts and re-rendered the moment an input\n"
     "changes. put reads the body from stdin (or --from-file); a template that names a secret\n"
     "that does not exist is refused with its line and column. Grant it like a secret, as\n"
     "tmpl:NAME; a container sees the file only if it is granted the template and every\n"
     "secret it names (see docs/templates.md).\n\n"
     "Flags:\n"
     "  --from-file F      put: read the body from file F instead of stdin\n"
     "  --version N        get: that version instead of the current one\n\n"
     "Examples:\n"
     "  secretctl template put app/db-url --from-file db-url.tmpl\n"
     "  secretctl grant tmpl:app/db-url name:web --path db.url\n"
     "  secretctl template get app/db-url --version 2\n\n"
     "Exit status: 0 done; 1 failed (refused with the reason, or \"NAME: no such template\");\n"
     "3 stored, not every container updated.\n"},
    {"completion", "Usage: secretctl completion bash|zsh|fish\n\n"
                   "Print a shell completion script made from this secretctl's command table.\n\n"
                   "Flags: none\n\n"
                   "Examples:\n"
                   "  secretctl completion bash > /etc/bash_completion.d/secretctl\n"
                   "  secretctl completion zsh > \"${fpath[1]}/_secretctl\"\n"
                   "  secretctl completion fish > ~/.config/fish/completions/secretctl.fish\n\n"
                   "Exit status: 0 done; 2 usage.\n"},
    {"help", "Usage: secretctl help [COMMAND]\n"
             "       secretctl help --commands\n\n"
             "Show the overview, or one command's help (the same as secretctl COMMAND --help).\n\n"
             "Flags:\n"
             "  --commands         list the command names, one per line\n\n"
             "Examples:\n"
             "  secretctl help grant\n\n"
             "Exit status: 0 done; 2 no such command.\n"},
};

const char *ctl_help_text(const char *name)
{
	for (size_t i = 0; i < sizeof(ctl_helps) / sizeof(ctl_helps[0]); i++)
		if (strcmp(ctl_helps[i].name, name) == 0)
			return ctl_helps[i].text;
	return NULL;
}
