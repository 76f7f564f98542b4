#!/usr/bin/env python3
"""Test traffic (IPv4 or IPv6, by the addresses given) with an skb mark, the way from-pod marks pod packets for XFRM: SO_MARK on the
socket (no nftables, no ip rule). Used by tests/vm/ipsec-reconcile.test.ts.

  marked-udp.py send SRC DST PORT MARKFILE COUNT INTERVAL
      sends COUNT datagrams "<n>" from SRC to DST:PORT, one every INTERVAL seconds; before each,
      reads the mark (hex) from MARKFILE, so the test switches key slots mid-stream by rewriting
      it. Prints {"sent": COUNT, "marks": [distinct marks used], "refused": {errno name: n}}
      (a send the kernel refuses, e.g. EPERM from an XFRM block policy, is counted, not fatal).
  marked-udp.py recv BIND PORT IDLE
      receives until no datagram came for IDLE seconds (after the first), prints
      {"received": n, "missing": [...], "duplicates": d} for the numbers 1..max seen.
"""
import errno
import json
import socket
import sys
import time


def family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def send(src, dst, port, markfile, count, interval):
    s = socket.socket(family(dst), socket.SOCK_DGRAM)
    s.bind((src, 0))
    used = []
    refused = {}
    current = None
    for n in range(1, count + 1):
        with open(markfile) as f:
            mark = int(f.read().strip(), 16)
        if mark != current:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
            current = mark
            used.append(hex(mark))
        try:
            s.sendto(str(n).encode(), (dst, port))
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno))
            refused[name] = refused.get(name, 0) + 1
        time.sleep(interval)
    print(json.dumps({"sent": count, "marks": used, "refused": refused}))


def recv(bind, port, idle):
    s = socket.socket(family(bind), socket.SOCK_DGRAM)
    s.bind((bind, port))
    seen = {}
    s.settimeout(600)
    while True:
        try:
            data, _ = s.recvfrom(64)
        except socket.timeout:
            break
        n = int(data)
        seen[n] = seen.get(n, 0) + 1
        s.settimeout(idle)
    top = max(seen) if seen else 0
    print(json.dumps({
        "received": len(seen),
        "max": top,
        "missing": [n for n in range(1, top + 1) if n not in seen][:100],
        "duplicates": sum(c - 1 for c in seen.values()),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6]), float(sys.argv[7]))
    else:
        recv(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
