#!/usr/bin/env python3
"""etcd_watch_lat.py: etcd's own watch latency (tests/bench/bench_cluster.sh). A watch on one
member (its JSON gateway's chunked /v3/watch stream), puts of one key on another; for each put
the time from before the put is sent until the watch delivers its event (CLOCK_MONOTONIC, as
bench_watch and bench_ctl). Prints "p50 / p99 / max X ms (N puts)".
usage: etcd_watch_lat.py PUT_URL WATCH_URL COUNT"""
import base64
import http.client
import json
import sys
import time
import urllib.parse


def main():
    put_url, watch_url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    key = base64.b64encode(b"/bench-probe/lat").decode()
    w = urllib.parse.urlsplit(watch_url)
    wc = http.client.HTTPConnection(w.hostname, w.port, timeout=30)
    wc.request("POST", "/v3/watch", json.dumps({"create_request": {"key": key}}))
    ws = wc.getresponse()
    created = json.loads(ws.readline())
    if not created.get("result", {}).get("created"):
        sys.exit("watch not created: %r" % created)
    p = urllib.parse.urlsplit(put_url)
    pc = http.client.HTTPConnection(p.hostname, p.port, timeout=30)
    lat = []
    for i in range(count):
        val = base64.b64encode(b"%014d" % i).decode()
        t0 = time.monotonic_ns()
        pc.request("POST", "/v3/kv/put", json.dumps({"key": key, "value": val}))
        pc.getresponse().read()
        while True:
            line = ws.readline()
            if not line:
                sys.exit("watch stream ended")
            evs = json.loads(line).get("result", {}).get("events", [])
            if any(e.get("kv", {}).get("value") == val for e in evs):
                break
        lat.append(time.monotonic_ns() - t0)
        time.sleep(0.01)
    lat.sort()
    j = min(len(lat) - 1, int(len(lat) * 0.99))
    print("p50 / p99 / max %.1f / %.1f / %.1f ms (%d puts)" %
          (lat[len(lat) // 2] / 1e6, lat[j] / 1e6, lat[-1] / 1e6, len(lat)))


main()
