#!/usr/bin/env python3
"""Writes tests/fuzz/corpus/procwatch/: proc-connector datagrams shaped as the kernel sends them
(nlmsghdr, cn_msg, struct proc_event packed after it: 16 + 20 + 40 = 76 bytes on Linux), for
fork, exec, exit, comm, the answer to a LISTEN, and broken ones. Run from the repository root."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'procwatch')
CN_IDX_PROC = CN_VAL_PROC = 1
NLMSG_DONE = 3
NONE, FORK, EXEC, COMM, EXIT = 0, 1, 2, 0x200, 0x80000000
COOKIE = 0x1234  # tests/fuzz/fuzz_procwatch.c's subscription cookie


def msg(what, data, cpu=1, seq=7, ack=0, idx=CN_IDX_PROC, val=CN_VAL_PROC, nl_len=None,
        cn_len=40):
    ev = struct.pack('<IIQ', what, cpu, 123456789) + data.ljust(24, b'\0')
    cn = struct.pack('<IIIIHH', idx, val, seq, ack, cn_len, 0) + ev
    n = 16 + len(cn) if nl_len is None else nl_len
    return struct.pack('<IHHII', n, NLMSG_DONE, 0, 0, 0) + cn


seeds = {
    'fork': msg(FORK, struct.pack('<iiii', 100, 100, 200, 200)),
    'exec': msg(EXEC, struct.pack('<ii', 100, 100)),
    'exec-thread': msg(EXEC, struct.pack('<ii', 101, 100), cpu=0, seq=1),
    'exit': msg(EXIT, struct.pack('<iiIIii', 100, 100, 0, 17, 1, 1)),
    'comm': msg(COMM, struct.pack('<ii', 100, 100) + b'sh'.ljust(16, b'\0')),
    'ack': msg(NONE, struct.pack('<I', 0), ack=COOKIE + 1, seq=0),
    'ack-einval': msg(NONE, struct.pack('<I', 22), ack=COOKIE + 1, seq=0),
    'cpu-high': msg(EXEC, struct.pack('<ii', 100, 100), cpu=5000),
    'truncated-event': msg(EXEC, struct.pack('<ii', 100, 100))[:60],
    'truncated-header': msg(FORK, b'')[:10],
    'nlmsg-len-long': msg(EXEC, struct.pack('<ii', 100, 100), nl_len=200),
    'nlmsg-len-short': msg(EXEC, struct.pack('<ii', 100, 100), nl_len=40),
    'cn-len-short': msg(EXEC, struct.pack('<ii', 100, 100), cn_len=8),
    'other-connector': msg(EXEC, struct.pack('<ii', 100, 100), idx=2),
    'empty': b'',
    'trailing': msg(EXEC, struct.pack('<ii', 100, 100)) + b'\0' * 20,
}

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)
