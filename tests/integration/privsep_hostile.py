#!/usr/bin/python3
# A hostile stand-in for secretd's server process (tests/integration/test_privsep.sh): run by the
# daemon process in test mode (SECRETD_TEST_SERVER_EXEC) exactly where the real server would run,
# unprivileged, with workload.sock's listening socket on fd 3 and the channel on fd 4. Each
# instance does the next step (counted in $SECRETD_TEST_PUB/step) and is killed by the daemon for
# its malformed message; the daemon then starts the next instance.
#   1: accepts a real client's connection and asks, with that connection, for a secret the
#      client is not granted (other/x) and then for one it is (app/a); records both answers;
#      then sends a truncated message
#   2: an oversized message   3: a wrong version   4: a REPLY (only the daemon sends those)
#   5: a request without its fd   6 and later: idle (a server with nothing to do)
import array
import os
import socket
import struct
import sys

PUB = os.environ["SECRETD_TEST_PUB"]
MAGIC = 0x31504453


def msg(typ, ident, arg=b"", status=0, version=0, body=b"", ver=1):
    return struct.pack("<IHHIHHQI", MAGIC, ver, typ, ident, status, len(arg), version,
                       len(body)) + arg + body


def send(ch, data, fd=None):
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))] if fd is not None else []
    ch.sendmsg([data], anc)


def reply(ch):
    data = ch.recv(1 << 22)
    magic, ver, typ, ident, status, alen, version, blen = struct.unpack("<IHHIHHQI", data[:28])
    body = data[28 + alen:28 + alen + blen]
    return status, body


step_file = os.path.join(PUB, "step")
try:
    step = int(open(step_file).read().strip() or "0") + 1
except FileNotFoundError:
    step = 1
with open(step_file + ".tmp", "w") as f:
    f.write(str(step))
os.rename(step_file + ".tmp", step_file)

ch = socket.socket(fileno=4)
ls = socket.socket(fileno=3)
ls.setblocking(True)

if step == 1:
    conn, _ = ls.accept()
    send(ch, msg(3, 1, b"other/x"), conn.fileno())
    st1, b1 = reply(ch)
    send(ch, msg(3, 2, b"app/a"), conn.fileno())
    st2, b2 = reply(ch)
    with open(os.path.join(PUB, "hostile.read.tmp"), "wb") as f:
        f.write(b"%d %s\n%d %s\n" % (st1, b1.rstrip(b"\n"), st2, b2.rstrip(b"\n")))
    os.rename(os.path.join(PUB, "hostile.read.tmp"), os.path.join(PUB, "hostile.read"))
    conn.close()
    send(ch, msg(3, 3, b"app/a")[:10])
elif step == 2:
    send(ch, msg(3, 4, b"a" * 200) + b"x" * 8192)
elif step == 3:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    send(ch, msg(3, 5, b"app/a", ver=2), c.fileno())
elif step == 4:
    # (no body: a REPLY body is over the daemon's limit for what it reads, 0, and refused anyway)
    send(ch, msg(32, 6, b"application/json", status=200))
elif step == 5:
    send(ch, msg(3, 7, b"app/a"))
# killed by the daemon for what it sent, or (step 6 and later) idle until the daemon goes away
while ch.recv(1 << 16):
    pass
sys.exit(0)
