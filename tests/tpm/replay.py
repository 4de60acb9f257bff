#!/usr/bin/env python3
"""Replay a TCG crypto-agile event log (TCG PC Client Platform Firmware
Profile §10.2: a TCG_PCR_EVENT header, then TCG_PCR_EVENT2 entries) into
SHA-256 PCR values, independently of Strata's Rust code.

Usage: replay.py LOG   (LOG: the raw bytes, e.g. binary_bios_measurements)
Prints "pcr N sha256 HEX" for every PCR an event extends; exits 1 on a
malformed log.
"""
import hashlib
import struct
import sys

SHA256 = 0x000B
SIZES = {0x0004: 20, 0x000B: 32, 0x000C: 48, 0x000D: 64}
EV_NO_ACTION = 3


def main(path):
    log = open(path, "rb").read()
    pcr, etype = struct.unpack_from("<II", log, 0)
    if etype != EV_NO_ACTION or log[32:48] != b"Spec ID Event03\0":
        sys.exit("replay: no Spec ID Event03 header")
    (size,) = struct.unpack_from("<I", log, 28)
    at = 32 + size
    pcrs = {}
    while at + 12 <= len(log):
        pcr, etype, count = struct.unpack_from("<III", log, at)
        at += 12
        sha = None
        for _ in range(count):
            (alg,) = struct.unpack_from("<H", log, at)
            n = SIZES.get(alg)
            if n is None:
                sys.exit(f"replay: unknown algorithm {alg:#x}")
            if alg == SHA256:
                sha = log[at + 2:at + 2 + n]
            at += 2 + n
        (esize,) = struct.unpack_from("<I", log, at)
        at += 4 + esize
        if at > len(log):
            sys.exit("replay: event runs past the end of the log")
        if etype == EV_NO_ACTION:
            continue
        if sha is None:
            sys.exit("replay: event without a SHA-256 digest")
        old = pcrs.get(pcr, bytes(32))
        pcrs[pcr] = hashlib.sha256(old + sha).digest()
    for pcr in sorted(pcrs):
        print(f"pcr {pcr} sha256 {pcrs[pcr].hex()}")


if __name__ == "__main__":
    main(sys.argv[1])
