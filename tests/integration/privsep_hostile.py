#!/usr/bin/python3
# A hostile stand-in for secretd's server process (tests/integration/test_privsep.sh): run by the
# daemon process in test mode (SECRETD_TEST_SERVER_EXEC) exactly where the real server would run,
# unprivileged, with workload.sock's listening socket on fd 3 and the channel on fd 4. Each
# instance does the next step (counted in $SECRETD_TEST_PUB/step) and is killed by the daemon for
# its malformed message; the daemon then starts the next instance.
#   1: accepts a real client's connection, hands it over (CONNKEY) and asks, naming its handle,
#      for a secret the client is not granted (other/x) and then for one it is (app/a); then
#      names connections that are not open: a made-up handle (another generation, another slot),
#      a connection whose client closed, one it reported closed (CLOSE), the closed one's handle
#      after another connection took its slot, the real client's after its CLOSE; records every
#      answer (hostile.read); then sends a truncated message
#   2: an oversized message   3: a wrong version   4: a REPLY (only the daemon sends those)
#   5: a CONNKEY without its fd   6 and later: idle (a server with nothing to do)
import array
import os
import socket
import struct
import sys

PUB = os.environ["SECRETD_TEST_PUB"]
sys.stderr = open(os.path.join(PUB, "hostile.err"), "a")
MAGIC = 0x31504453


def msg(typ, ident, arg=b"", status=0, handle=0, body=b"", ver=2):
    return struct.pack("<IHHIHHQI", MAGIC, ver, typ, ident, status, len(arg), handle,
                       len(body)) + arg + body


def send(ch, data, fd=None):
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))] if fd is not None else []
    ch.sendmsg([data], anc)


def reply(ch):
    data = ch.recv(1 << 22)
    magic, ver, typ, ident, status, alen, version, blen = struct.unpack("<IHHIHHQI", data[:28])
    body = data[28 + alen:28 + alen + blen]
    return status, body


def call(ch, data, fd=None):
    """(status, body, version field) of the answer to one request"""
    send(ch, data, fd)
    data = ch.recv(1 << 22)
    magic, ver, typ, ident, status, alen, version, blen = struct.unpack("<IHHIHHQI", data[:28])
    return status, data[28 + alen:28 + alen + blen], version


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
    READ, WHOAMI, CONNKEY, CLOSE = 3, 1, 8, 10
    conn, _ = ls.accept()
    st, key, h = call(ch, msg(CONNKEY, 1), conn.fileno())
    assert st == 200 and h != 0, (st, key, h)
    st1, b1, _ = call(ch, msg(READ, 2, b"other/x", handle=h))
    st2, b2, _ = call(ch, msg(READ, 3, b"app/a", handle=h))
    out = []
    # made up: the same slot in another generation, another slot of this generation
    out.append(call(ch, msg(READ, 4, b"app/a", handle=h + (1 << 32)))[0])
    out.append(call(ch, msg(READ, 5, b"app/a", handle=(h & ~0xffffffff) | 4000))[0])
    # a connection of its own (a socket pair: the peer is this process), open: answered
    a, b = socket.socketpair()
    st, _, h2 = call(ch, msg(CONNKEY, 6), b.fileno())
    assert st == 200 and h2 not in (0, h), (st, h2)
    out.append(call(ch, msg(WHOAMI, 7, handle=h2))[0])
    # its client closes (the server does not say so): refused
    a.close()
    out.append(call(ch, msg(READ, 8, b"app/a", handle=h2))[0])
    # reported closed: forgotten
    send(ch, msg(CLOSE, 0, handle=h2))
    b.close()
    out.append(call(ch, msg(READ, 9, b"app/a", handle=h2))[0])
    # another connection (it takes the freed slot): the old handle still names nothing
    a3, b3 = socket.socketpair()
    st, _, h3 = call(ch, msg(CONNKEY, 10), b3.fileno())
    assert st == 200 and h3 not in (0, h, h2), (st, h3)
    out.append(call(ch, msg(WHOAMI, 11, handle=h2))[0])
    out.append(call(ch, msg(WHOAMI, 12, handle=h3))[0])
    # the real client's connection, reported closed, then named again (it is still open here)
    send(ch, msg(CLOSE, 0, handle=h))
    out.append(call(ch, msg(READ, 13, b"app/a", handle=h))[0])
    with open(os.path.join(PUB, "hostile.read.tmp"), "wb") as f:
        f.write(b"%d %s\n%d %s\n" % (st1, b1.rstrip(b"\n"), st2, b2.rstrip(b"\n")))
        f.write(b" ".join(b"%d" % x for x in out) + b"\n")
    os.rename(os.path.join(PUB, "hostile.read.tmp"), os.path.join(PUB, "hostile.read"))
    conn.close()
    send(ch, msg(READ, 14, b"app/a", handle=h3)[:10])
elif step == 2:
    send(ch, msg(3, 4, b"a" * 200, handle=1) + b"x" * 8192)
elif step == 3:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    send(ch, msg(3, 5, b"app/a", handle=1, ver=1), c.fileno())
elif step == 4:
    # (no body: a REPLY body is over the daemon's limit for what it reads, 0, and refused anyway)
    send(ch, msg(32, 6, b"application/json", status=200))
elif step == 5:
    # a CONNKEY without its connection
    send(ch, msg(8, 7))
# killed by the daemon for what it sent, or (step 6 and later) idle until the daemon goes away
while ch.recv(1 << 16):
    pass
sys.exit(0)
