#!/usr/bin/python3
# memscan.py PID HEXNEEDLE...: searches every readable mapping of process PID (through
# /proc/PID/mem, as root) for each needle (hex-encoded bytes); prints "found" or "absent" per
# needle, one line each, and on stderr how many bytes were read. Exit 2 when nothing was readable.
import re
import sys

pid = sys.argv[1]
needles = [bytes.fromhex(h) for h in sys.argv[2:]]
found = [False] * len(needles)
total = 0
with open("/proc/%s/maps" % pid) as maps, open("/proc/%s/mem" % pid, "rb", 0) as mem:
    for line in maps:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        start, end, perms = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
        if perms[0] != "r" or "[vvar]" in line or "[vsyscall]" in line:
            continue
        try:
            mem.seek(start)
            data = mem.read(end - start)
        except (OSError, ValueError, OverflowError):
            continue
        total += len(data)
        for i, n in enumerate(needles):
            if not found[i] and n in data:
                found[i] = True
print("\n".join("found" if f else "absent" for f in found))
print("read %d bytes" % total, file=sys.stderr)
sys.exit(0 if total else 2)
