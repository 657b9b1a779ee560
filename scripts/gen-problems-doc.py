#!/usr/bin/env python3
"""Writes the problems docs/openapi.json documents as a C X-macro list,

  #define RF_DOC_PROBLEMS(XX) XX(code, status) ...

one row per (code, status) a problem+json response lists, for
src/api/openapi.c to hold against core/problems.h at compile time: a
drift between the two is then a compile error naming the code. Only the
document is read here; the C side is left to the compiler.

usage: scripts/gen-problems-doc.py DOC > OUT
Fails (exit 1, nothing written) when the document cannot say a code's
status: a problem response without a status const, a code that is not a C
identifier, or a code of Problem.code that no response lists."""
import json
import re
import sys


def walk(node):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def documented(doc):
    """({(code, status)}, [reasons the document is unreadable])."""
    rows, why = set(), []
    for node in walk(doc):
        if not (isinstance(node, dict) and "application/problem+json" in node.get("content", {})):
            continue
        props = node["content"]["application/problem+json"].get("schema", {}).get("properties", {})
        codes = props.get("code", {}).get("enum", [])
        status = props.get("status", {}).get("const")
        if not isinstance(status, int):
            why.append(f"a problem response for {codes} has no integer status const")
            continue
        for c in codes:
            if not re.fullmatch(r"[a-z_]+", str(c)):
                why.append(f"code {c!r} is not [a-z_]+")
            else:
                rows.add((c, status))
    every = doc.get("components", {}).get("schemas", {}).get("Problem", {}) \
        .get("properties", {}).get("code", {}).get("enum", [])
    listed = {c for c, _ in rows}
    why += [f"Problem.code {c!r} is in no response, so it has no status" for c in every
            if c not in listed]
    return rows, why


def main(argv):
    if len(argv) != 1:
        sys.stderr.write(__doc__)
        return 2
    src = argv[0]
    try:
        with open(src, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        sys.stderr.write(f"{src}: {e}\n")
        return 1
    rows, why = documented(doc)
    if why:
        for w in why:
            sys.stderr.write(f"{src}: {w}\n")
        return 1
    lines = [f"/* Generated from {src} by scripts/gen-problems-doc.py; do not edit. */",
             "#define RF_DOC_PROBLEMS(XX) \\"]
    lines += [f"    XX({c}, {s}) \\" for c, s in sorted(rows)]
    lines.append("    /* end */")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
