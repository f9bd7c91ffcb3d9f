/* limits.h: named limits shared by the daemon and its clients (pure constants, no code). */
#pragma once

#define SECRETD_NAME_MAX 255                         /* bytes in a secret name, all segments */
#define SECRETD_VALUE_MAX_DEFAULT (1024 * 1024)      /* default largest secret value */
#define SECRETD_VALUE_MAX_CEILING (64 * 1024 * 1024) /* --max-value may not exceed this */
#define SECRETD_SELECTOR_MAX 512                     /* bytes in a grant selector */
#define SECRETD_PATH_MAX 255                         /* bytes in a file path inside a mount */
#define SECRETD_JSON_BODY_MAX (64 * 1024)            /* largest JSON request body */
#define SECRETD_KEEP_VERSIONS_DEFAULT 10             /* versions kept per secret */
#define SECRETD_KEY_ROTATE_BATCH 128                 /* data keys re-wrapped per transaction */
#define SECRETD_KEY_ROTATE_BATCH_MAX 100000          /* --rotate-batch may not exceed this */
#define SECRETD_PROCWATCH_MAX 1024                   /* processes remembered (a pidfd each), LRU */

#define SECRETD_RUNTIME_DIR_DEFAULT "/run/secretd"
#define SECRETD_STATE_DIR_DEFAULT "/var/lib/secretd"
#define SECRETD_KEY_FILE_DEFAULT "/etc/secretd/master.key"
#define SECRETD_ADMIN_SOCK "admin.sock"
#define SECRETD_WORKLOAD_SOCK "workload.sock"
#define SECRETD_MOUNT_DEFAULT "/run/secrets"
