#!/usr/bin/env python3
"""Writes a file's bytes as a C initializer list, to be #included inside
`static const unsigned char x[] = { ... };` (C11 has no #embed, and a byte
list has no string-literal length limit).

usage: scripts/embed.py [--json] IN OUT
  --json  IN must parse as JSON (a broken document fails the build, not a
          request) and is embedded compact: the served copy is half the size.
OUT is written whole or not at all, so an interrupted build never leaves a
truncated copy that make would take as up to date."""
import json
import os
import sys


def main(argv):
    args = [a for a in argv if a != "--json"]
    if len(args) != 2:
        sys.stderr.write(__doc__)
        return 2
    src, out = args
    with open(src, "rb") as f:
        data = f.read()
    if "--json" in argv:
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            sys.stderr.write(f"{src}: not valid JSON: {e}\n")
            return 1
        data = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    lines = [f"/* Generated from {src} by scripts/embed.py; do not edit. */"]
    for i in range(0, len(data), 16):
        lines.append(",".join(str(b) for b in data[i : i + 16]) + ",")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    tmp = f"{out}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
