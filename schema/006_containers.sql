-- 006_containers: the registry of attached containers (issue 14 item 4), so that a restarted
-- daemon re-attaches the containers that still run. One row per container the OCI hook
-- attached (hook = 1) or per seen-only container that mounted itself through the workload API
-- (hook = 0). No secret material. pid and start_time name the process the row stands for (the
-- init for hook = 1, the process that asked for the mount for hook = 0): start_time is field 22
-- of /proc/PID/stat (clock ticks since boot), so a reused pid never passes for it. mount: 0 not
-- mounted, 1 mounted at attach (in the init's namespace), 2 a self-mount (in the namespace of
-- mount_pid, whose start is mount_start; mount_ns is that mount namespace's inode, so that
-- another process of the container in it can be found once the requester has exited). root is the bundle root given at createRuntime (kept
-- for the record; restore uses /proc/PID/root). mac: a keyed BLAKE2b MAC (subkey 5 of the MAC
-- root, message "secretd/container/v1") over every column and the container's labels in order:
-- an edited, added or swapped row fails its check and is not restored.
CREATE TABLE IF NOT EXISTS containers (
	id TEXT PRIMARY KEY,
	hook INTEGER NOT NULL CHECK (hook IN (0, 1)),
	runtime TEXT NOT NULL,
	name TEXT NOT NULL,
	cgroup TEXT NOT NULL,
	pid INTEGER NOT NULL CHECK (pid > 0),
	start_time INTEGER NOT NULL CHECK (start_time >= 0),
	mount INTEGER NOT NULL CHECK (mount IN (0, 1, 2)),
	mount_pid INTEGER NOT NULL CHECK (mount_pid >= 0),
	mount_start INTEGER NOT NULL CHECK (mount_start >= 0),
	mount_ns INTEGER NOT NULL CHECK (mount_ns >= 0),
	root TEXT,
	target TEXT NOT NULL,
	uid INTEGER NOT NULL,
	gid INTEGER NOT NULL,
	wants INTEGER NOT NULL CHECK (wants IN (0, 1)),
	created INTEGER NOT NULL,
	mac BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS container_labels (
	container_id TEXT NOT NULL REFERENCES containers (id) ON DELETE CASCADE,
	idx INTEGER NOT NULL CHECK (idx >= 0),
	key TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (container_id, idx)
) WITHOUT ROWID;
