#!/bin/sh
# test_upload.sh: a request whose whole body is already queued when the daemon reads it. The
# daemon is stopped (SIGSTOP) while a client queues a PUT of 1 MiB and of 8 MB (SO_SNDBUFFORCE
# lets the kernel hold all of it), then continued: libmicrohttpd reads it in many runs with no new
# socket event (its sockets are edge-triggered), so the loop must keep running it while it has
# work. It once stopped after 8 runs and waited for an event that never came: the put hung until
# the client gave up (seen as "Timeout was reached" for a 1 MiB put on a loaded machine).
. "$(dirname "$0")/lib.sh"
need_root
need_cmd python3

sd_start --max-value 16777216
cat >"$T/bigput.py" <<'PY'
import os, signal, socket, sys
path, pid, size, name = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
body = bytes((i * 7 + 1) % 251 for i in range(size))
s = socket.socket(socket.AF_UNIX)
s.connect(path)
s.setsockopt(socket.SOL_SOCKET, 32, 64 * 1024 * 1024)  # SO_SNDBUFFORCE (root)
req = (b"PUT /v1/secrets/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
       b"Content-Length: %d\r\n\r\n" % (name.encode(), size)) + body
os.kill(pid, signal.SIGSTOP)
try:
    s.setblocking(False)
    sent = 0
    try:
        while sent < len(req):
            sent += s.send(req[sent:])
    except BlockingIOError:
        pass
finally:
    os.kill(pid, signal.SIGCONT)
s.setblocking(True)
s.sendall(req[sent:])
s.settimeout(60)
try:
    line = s.recv(200).split(b"\r\n")[0].decode()
except socket.timeout:
    line = "no answer in 60 s"
open(sys.argv[5], "wb").write(body)
print(line, "(%d of %d bytes queued before the daemon ran)" % (sent, len(req)))
PY
for size in 1048576 8000000; do
	out=$(python3 "$T/bigput.py" "$SECRETD_SOCKET" "$SD_WPID" "$size" "up/s$size" "$T/body.$size") ||
		fail "client failed"
	case $out in "HTTP/1.1 201"*) ;; *) fail "a queued $size-byte put: $out" ;; esac
	ctl get "up/s$size" >"$T/got.$size" || fail "get up/s$size"
	cmp -s "$T/got.$size" "$T/body.$size" || fail "the $size-byte value differs"
done
ok "a put whose whole body was queued before the daemon read it is answered (1 MiB, 8 MB), byte for byte"
