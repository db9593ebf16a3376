#!/usr/bin/env python3
"""Recompute shiplog's hash chain from an audit export (NDJSON, one sealed event a line).

Usage: verify-export.py [EXPORT.ndjson]     (reads stdin without a file)

For each line: record = the nine hashed fields; canonical = compact JSON with sorted
keys, UTF-8; hash = SHA-256(previous hash || canonical), starting from 32 zero bytes.
Prints "verified N events, head <hex>" and exits 0, or names the first break and exits 1.
"""
import hashlib
import json
import sys

RECORD_FIELDS = ("aggregateType", "cursor", "metadata", "payload", "recordedAt",
                 "sequence", "type", "usecaseId", "version")


def chain_hash(prev_hex, line):
    record = {field: line[field] for field in RECORD_FIELDS}
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(bytes.fromhex(prev_hex) + canonical.encode("utf-8")).hexdigest()


def verify(lines):
    prev, count = "00" * 32, 0
    for text in lines:
        if not text.strip():
            continue
        try:
            line = json.loads(text)
            index, cursor = line.get("chainIndex"), line.get("cursor")
            if index != count + 1:
                reason = f"expected chainIndex {count + 1} (an event is missing)"
            elif line["prevHash"] != prev:
                reason = "prevHash is not the previous event's hash"
            elif chain_hash(prev, line) != line["hash"]:
                reason = "the record does not match its hash"
            else:
                prev, count = line["hash"], count + 1
                continue
        except (ValueError, KeyError, AttributeError) as e:
            index, cursor, reason = count + 1, None, f"unreadable line: {e!r}"
        print(f"chain broken at chainIndex {index} (cursor {cursor}): {reason}")
        return 1
    print(f"verified {count} events, head {prev if count else 'none'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1:
        with open(sys.argv[1], encoding="utf-8") as export:
            sys.exit(verify(export))
    sys.stdin.reconfigure(encoding="utf-8")
    sys.exit(verify(sys.stdin))
