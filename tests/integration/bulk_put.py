#!/usr/bin/env python3
"""bulk_put.py SOCKET PREFIX FIRST COUNT: PUTs COUNT secrets PREFIX<i> (i from FIRST, 5 digits)
with the value "v1-<i>" over one keep-alive connection to the admin socket (a process per put
would take minutes). Exits non-zero on the first answer that is not 201."""
import http.client
import socket
import sys


class UnixConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(120)
        s.connect(self.path)
        self.sock = s


def main():
    sock, prefix, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    c = UnixConn(sock)
    for i in range(first, first + count):
        body = ("v1-%05d" % i).encode()
        c.request("PUT", "/v1/secrets/%s%05d" % (prefix, i), body=body,
                  headers={"Content-Type": "application/octet-stream"})
        r = c.getresponse()
        data = r.read()
        if r.status != 201:
            print("PUT %s%05d: %d %s" % (prefix, i, r.status, data.decode(errors="replace")),
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
