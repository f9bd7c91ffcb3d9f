#!/usr/bin/python3
# memscan.py PID HEXNEEDLE...: searches every readable mapping of process PID (through
# /proc/PID/mem, as root) for each needle (hex-encoded bytes); prints "found" or "absent" per
# needle, one line each, and on stderr how many bytes were read and how many mappings were
# skipped (over 1 GiB: a sanitizer's shadow memory, not heap). Exit 2 when nothing was readable.
import re
import sys

CHUNK = 1 << 20
HUGE = 1 << 30
pid = sys.argv[1]
needles = [bytes.fromhex(h) for h in sys.argv[2:]]
overlap = max((len(n) for n in needles), default=1)
found = [False] * len(needles)
total = skipped = 0
with open("/proc/%s/maps" % pid) as maps, open("/proc/%s/mem" % pid, "rb", 0) as mem:
    for line in maps:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        start, end, perms = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
        if perms[0] != "r" or "[vvar]" in line or "[vsyscall]" in line:
            continue
        if end - start > HUGE:
            skipped += 1
            continue
        tail = b""
        for off in range(start, end, CHUNK):
            try:
                mem.seek(off)
                data = mem.read(min(CHUNK, end - off))
            except (OSError, ValueError, OverflowError):
                tail = b""
                continue
            total += len(data)
            window = tail + data
            for i, n in enumerate(needles):
                if not found[i] and n in window:
                    found[i] = True
            tail = data[-overlap:]
print("\n".join("found" if f else "absent" for f in found))
print("read %d bytes, %d mapping(s) over 1 GiB skipped" % (total, skipped), file=sys.stderr)
sys.exit(0 if total else 2)
