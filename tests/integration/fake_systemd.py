#!/usr/bin/env python3
"""fake_systemd.py NOTIFY_SOCKET STATE_DIR -- CMD [ARGS...]

Plays the two parts of systemd that secretd's keeper uses, so that test_fdstore.sh can check them
on a machine without systemd: the notify socket (READY=1, and the fd store: FDSTORE=1 with
FDNAME=, FDSTOREREMOVE=1), and a service restart that hands the stored fds to the new main
process (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID, fds from 3), as Restart=always does.
  SIGUSR1: kill -9 the main process, then start CMD again with the fd store (a keeper crash).
  SIGTERM: stop the main process (SIGTERM, wait), then exit with its status.
STATE_DIR/pid holds the main process's pid; STATE_DIR/store the stored names, one per line
(rewritten after each change); STATE_DIR/notify every notify message, one per line."""
import array
import os
import select
import signal
import socket
import sys


def main():
    sock_path, state = sys.argv[1], sys.argv[2]
    cmd = sys.argv[4:]
    store = []  # [(name, fd)] in the order stored
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    flags = {"restart": False, "stop": False}
    signal.signal(signal.SIGUSR1, lambda *_: flags.__setitem__("restart", True))
    signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("stop", True))

    def write(name, text):
        tmp = os.path.join(state, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, os.path.join(state, name))

    def start():
        pid = os.fork()
        if pid == 0:
            fds = [fd for _, fd in store]
            high = [os.dup(fd) for fd in fds]  # out of the way of 3..
            high = [fcntl_dupfd(fd) for fd in high]
            for i, fd in enumerate(high):
                os.dup2(fd, 3 + i, inheritable=True)
            env = dict(os.environ, NOTIFY_SOCKET=sock_path)
            if fds:
                env.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds)),
                           LISTEN_FDNAMES=":".join(n for n, _ in store))
            os.execve(cmd[0], cmd, env)
        write("pid", "%d\n" % pid)
        return pid

    def fcntl_dupfd(fd):
        import fcntl
        n = fcntl.fcntl(fd, fcntl.F_DUPFD, 1000)
        os.close(fd)
        return n

    def receive():
        msg, anc, _, _ = sock.recvmsg(8192, socket.CMSG_SPACE(64 * 4))
        fds = array.array("i")
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
        fields = dict(l.split("=", 1) for l in msg.decode().split("\n") if "=" in l)
        with open(os.path.join(state, "notify"), "a") as f:
            f.write(" ".join("%s=%s" % kv for kv in fields.items()) + "\n")
        if fields.get("FDSTORE") == "1":
            name = fields.get("FDNAME", "stored")
            for fd in fds:
                store.append((name, fd))
        else:
            for fd in fds:
                os.close(fd)
            if fields.get("FDSTOREREMOVE") == "1":
                name = fields.get("FDNAME")
                for n, fd in [e for e in store if e[0] == name]:
                    os.close(fd)
                store[:] = [e for e in store if e[0] != name]
        write("store", "".join(n + "\n" for n, _ in store))

    pid = start()
    status = 0
    while True:
        if flags["restart"]:
            flags["restart"] = False
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pid = start()
        if flags["stop"]:
            os.kill(pid, signal.SIGTERM)
            _, st = os.waitpid(pid, 0)
            status = os.waitstatus_to_exitcode(st)
            break
        try:
            r, _, _ = select.select([sock], [], [], 0.05)
        except InterruptedError:
            continue
        if r:
            receive()
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
    for _, fd in store:
        os.close(fd)
    sys.exit(status if status >= 0 else 128 - status)


if __name__ == "__main__":
    main()
