#!/usr/bin/env python3
"""Every SQL statement in src/ is a constant; values travel only as bound
parameters.

Two rules, checked on a light C tokenizer (comments removed, adjacent string
literals joined, #define bodies made of literals resolved):

1. No format string builds SQL: a string literal that holds an SQL keyword
   (SELECT, INSERT, UPDATE, DELETE, WHERE, VALUES, SET, ...) and a printf
   conversion (%s, %d, ...) is a finding wherever it appears (snprintf,
   asprintf, rf_arena_printf, a static format table ...), and so is such a
   literal handed to strcat/strcpy/memcpy-style functions.

2. Every SQL argument of a statement sink is constant: rf_db_exec, the
   driver vtable's ->exec, PQexec, PQexecParams, PQprepare, PQsendQuery*,
   sqlite3_exec, sqlite3_prepare*, must get string literals (or macros made
   of them). A function that hands one of its own parameters to a sink
   becomes a sink for that parameter (pg_simple, sq_simple, rf_store_page
   ...), so its callers are held to the same rule, transitively.

Anything else must be listed in sql_allow.txt with a justification; an entry
that no longer matches anything is itself a finding, so the list cannot rot.

usage: sql_params.py [--root DIR] [--allow FILE] [-v]
Exit 0 when clean, 1 with one line per finding.
"""
import argparse
import os
import re
import sys

KEYWORDS = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|VALUES|SET|FROM|INTO|CREATE|DROP|ALTER|"
    r"TRUNCATE|DEALLOCATE|PREPARE|EXECUTE|PRAGMA|ORDER BY|LIMIT|RETURNING|JOIN)\b")
CONVERSION = re.compile(r"%[-+ #0]*(\*|\d+)?(\.(\*|\d+))?(hh|h|ll|l|j|z|t|L)?[diouxXeEfgGcspn]")
# Statement sinks: function name -> indexes of arguments that are SQL text.
SINKS = {
    "rf_db_exec": {1},
    "exec": {1},  # c->drv->exec(c, sql, ...)
    "PQexec": {1},
    "PQexecParams": {1},
    "PQprepare": {2},
    "PQsendQuery": {1},
    "PQsendQueryParams": {1},
    "PQsendPrepare": {2},
    "sqlite3_exec": {1},
    "sqlite3_prepare": {1},
    "sqlite3_prepare_v2": {1},
    "sqlite3_prepare_v3": {1},
    # Its two statements reach rf_db_exec through struct page_ctx, which the
    # forwarding rule cannot follow: named here so its callers are checked.
    "rf_store_page": {2, 3},
    "rf_store_page_by": {2, 3},
    "rf_store_get": {2},  # through struct get_ctx, likewise
}
COPIERS = {"strcat", "strncat", "strcpy", "strncpy", "stpcpy", "stpncpy", "memcpy", "memmove",
           "strlcpy", "strlcat"}
C_KEYWORDS = {"if", "while", "for", "switch", "return", "sizeof", "do", "else", "case",
              "_Alignof", "alignof", "__attribute__", "defined", "_Static_assert"}

TOKEN = re.compile(r"""
    (?P<str>(?:u8|u|U|L)?"(?:\\.|[^"\\\n])*")
  | (?P<chr>(?:u8|u|U|L)?'(?:\\.|[^'\\\n])*')
  | (?P<id>[A-Za-z_]\w*)
  | (?P<num>\.?\d[\w.]*(?:[eEpP][+-]\w*)?)
  | (?P<op>->|\+\+|--|<<=|>>=|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^!=<>]=|\.\.\.|[^\s])
""", re.X)


def strip_comments(src):
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            nl = src.count("\n", i, n if j < 0 else j)
            out.append("\n" * nl or " ")
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Tok:
    __slots__ = ("kind", "text", "line")

    def __init__(self, kind, text, line):
        self.kind, self.text, self.line = kind, text, line


def literal_value(text):
    """The characters of one C string literal, escapes left as written."""
    return text[text.index('"') + 1:-1]


def tokenize(code, first_line=1):
    toks, line, pos = [], first_line, 0
    for m in TOKEN.finditer(code):
        line += code.count("\n", pos, m.start())
        pos = m.start()
        kind = m.lastgroup
        if kind == "str" and toks and toks[-1].kind == "str":
            # Adjacent literals are one string.
            prev = toks[-1]
            prev.text = '"' + literal_value(prev.text) + literal_value(m.group()) + '"'
            continue
        toks.append(Tok(kind, m.group(), line))
    return toks


class Source:
    def __init__(self, path, rel):
        self.rel = rel
        raw = strip_comments(open(path, encoding="utf-8", errors="replace").read())
        # Directives (with their continuations) are set aside; their lines
        # stay as blanks so line numbers hold.
        code_lines, self.defines = [], []
        lines = raw.split("\n")
        i = 0
        while i < len(lines):
            ln = lines[i]
            if ln.lstrip().startswith("#"):
                start = i + 1
                text = ln
                while text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text[:-1] + " " + lines[i]
                    code_lines.append("")
                code_lines.append("")
                m = re.match(r"\s*#\s*define\s+(\w+)(\([^)]*\))?\s*(.*)$", text)
                if m and not m.group(2):
                    self.defines.append((m.group(1), m.group(3), start))
            else:
                code_lines.append(ln)
            i += 1
        self.toks = tokenize("\n".join(code_lines))
        self.define_toks = [(name, tokenize(body, ln), ln) for name, body, ln in self.defines]


def literal_macros(sources):
    """Names of macros whose bodies are string literals and such macros."""
    known = set()
    changed = True
    while changed:
        changed = False
        for s in sources:
            for name, toks, _ in s.define_toks:
                if name in known or not toks:
                    continue
                if all(t.kind == "str" or (t.kind == "id" and t.text in known) for t in toks):
                    known.add(name)
                    changed = True
    return known


def match_paren(toks, i):
    """Index of the ')' closing the '(' at toks[i]."""
    depth = 0
    for j in range(i, len(toks)):
        t = toks[j].text
        if t in "([{":
            depth += 1
        elif t in ")]}":
            depth -= 1
            if depth == 0:
                return j
    return len(toks) - 1


def split_args(toks, lo, hi):
    """Top-level comma-separated token lists of toks[lo:hi]."""
    args, cur, depth = [], [], 0
    for t in toks[lo:hi]:
        if t.text in "([{":
            depth += 1
        elif t.text in ")]}":
            depth -= 1
        if t.text == "," and depth == 0:
            args.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur or args:
        args.append(cur)
    return args


def param_names(ptoks):
    names = []
    for p in split_args(ptoks, 0, len(ptoks)):
        ids = [t.text for t in p if t.kind == "id"]
        # "char buf[64]" -> buf; "const char *sql" -> sql; "void" -> none
        if "[" in [t.text for t in p]:
            cut = [t.text for t in p].index("[")
            ids = [t.text for t in p[:cut] if t.kind == "id"]
        names.append(ids[-1] if ids and ids != ["void"] else None)
    return names


class Call:
    __slots__ = ("src", "func", "params", "name", "args", "line")


def scan(source):
    """Function definitions and calls (with their enclosing function)."""
    toks, calls = source.toks, []
    depth, func, params = 0, None, []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t.text == "{":
            if depth == 0:
                # A definition: "name ( params ) {" just before.
                func, params = None, []
                j = i - 1
                if j >= 0 and toks[j].text == ")":
                    k = j
                    d = 0
                    while k >= 0:
                        if toks[k].text == ")":
                            d += 1
                        elif toks[k].text == "(":
                            d -= 1
                            if d == 0:
                                break
                        k -= 1
                    if k > 0 and toks[k - 1].kind == "id":
                        func = toks[k - 1].text
                        params = param_names(toks[k + 1:j])
            depth += 1
        elif t.text == "}":
            depth -= 1
            if depth == 0:
                func, params = None, []
        elif (depth > 0 and t.kind == "id" and t.text not in C_KEYWORDS and i + 1 < len(toks)
              and toks[i + 1].text == "("):
            close = match_paren(toks, i + 1)
            c = Call()
            c.src, c.func, c.params, c.name, c.line = source, func, params, t.text, t.line
            c.args = split_args(toks, i + 2, close)
            calls.append(c)
        i += 1
    return calls


def literal_arrays(source, literal):
    """Names of arrays initialised with string literals only, e.g.
    static const char *const pragmas[] = {"PRAGMA ...", ...}."""
    toks, names = source.toks, set()
    for i in range(len(toks) - 4):
        if (toks[i].kind == "id" and toks[i + 1].text == "[" and toks[i + 2].text == "]"
                and toks[i + 3].text == "=" and toks[i + 4].text == "{"):
            close = match_paren(toks, i + 4)
            items = [a for a in split_args(toks, i + 5, close) if a]
            if items and all(len(a) == 1 and (a[0].kind == "str" or a[0].text == "NULL" or
                                              a[0].text in literal) for a in items):
                names.add(toks[i].text)
    return names


def is_constant(a, literal, arrays):
    """String literals, literal macros, an element of a literal array, or a
    choice between constants (cond ? "A" : "B")."""
    if not a:
        return False
    if all(t.kind == "str" or (t.kind == "id" and t.text in literal) for t in a):
        return True
    if (len(a) >= 4 and a[0].kind == "id" and a[0].text in arrays and a[1].text == "["
            and match_paren(a, 1) == len(a) - 1):
        return True
    depth, q = 0, None
    for i, t in enumerate(a):
        if t.text in "([{":
            depth += 1
        elif t.text in ")]}":
            depth -= 1
        elif depth == 0 and t.text == "?" and q is None:
            q = i
        elif depth == 0 and t.text == ":" and q is not None:
            return is_constant(a[q + 1:i], literal, arrays) and \
                is_constant(a[i + 1:], literal, arrays)
    return False


def expr_text(toks):
    return " ".join(t.text for t in toks)


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--root", default=os.path.join(here, "..", ".."))
    ap.add_argument("--allow", default=os.path.join(here, "sql_allow.txt"))
    ap.add_argument("-v", action="store_true")
    o = ap.parse_args()

    allow = {}
    for n, ln in enumerate(open(o.allow, encoding="utf-8"), 1):
        body = ln.split("#", 1)
        entry = body[0].strip()
        if not entry:
            continue
        why = body[1].strip() if len(body) > 1 else ""
        if not why:
            print(f"{o.allow}:{n}: allow-list entry without a justification: {entry}")
            return 1
        parts = [p.strip() for p in entry.split("|")]
        if len(parts) != 3:
            print(f"{o.allow}:{n}: want FILE | FUNCTION | EXPRESSION-or-LITERAL # why")
            return 1
        allow[tuple(parts)] = [n, 0]

    srcdir = os.path.join(o.root, "src")
    sources = []
    for d, _, files in sorted(os.walk(srcdir)):
        for f in sorted(files):
            if f.endswith((".c", ".h", ".inc")):
                p = os.path.join(d, f)
                sources.append(Source(p, os.path.relpath(p, o.root)))
    if not sources:
        print(f"no sources under {srcdir}")
        return 1
    literal = literal_macros(sources)
    findings = []

    def allowed(rel, func, what):
        k = (rel, func or "-", what)
        if k in allow:
            allow[k][1] += 1
            return True
        return False

    # Rule 1: formatted or concatenated SQL text.
    for s in sources:
        every = [(t, None) for t in s.toks] + [(t, name) for name, ts, _ in s.define_toks
                                                for t in ts]
        for t, macro in every:
            if t.kind != "str":
                continue
            v = literal_value(t.text)
            if KEYWORDS.search(v) and CONVERSION.search(v):
                if not allowed(s.rel, macro or "-", v):
                    findings.append(f"{s.rel}:{t.line}: SQL text with a format conversion: "
                                    f'"{v}"')
    calls = [c for s in sources for c in scan(s)]
    arrays = {s.rel: literal_arrays(s, literal) for s in sources}
    for c in calls:
        if c.name in COPIERS:
            for a in c.args:
                for t in a:
                    if t.kind == "str" and KEYWORDS.search(literal_value(t.text)):
                        if not allowed(c.src.rel, c.func, literal_value(t.text)):
                            findings.append(f"{c.src.rel}:{c.line}: SQL text pasted by "
                                            f"{c.name}() in {c.func}()")

    # Rule 2: sinks get constants; forwarders become sinks.
    sinks = {k: set(v) for k, v in SINKS.items()}
    changed = True
    while changed:
        changed = False
        for c in calls:
            for idx in sinks.get(c.name, ()):
                if idx >= len(c.args) or not c.func:
                    continue
                a = c.args[idx]
                if len(a) == 1 and a[0].kind == "id" and a[0].text in c.params:
                    pi = c.params.index(a[0].text)
                    if pi not in sinks.setdefault(c.func, set()):
                        sinks[c.func].add(pi)
                        changed = True
    for c in calls:
        for idx in sorted(sinks.get(c.name, ())):
            if idx >= len(c.args):
                continue
            a = c.args[idx]
            if is_constant(a, literal, arrays[c.src.rel]):
                continue
            if len(a) == 1 and a[0].kind == "id" and c.func and a[0].text in c.params:
                continue  # a forwarder: its callers are checked
            what = expr_text(a)
            if not allowed(c.src.rel, c.func, what):
                findings.append(f"{c.src.rel}:{c.line}: {c.name}() in {c.func or '?'}() gets "
                                f"SQL that is not a constant: {what}")

    for k, (n, hits) in allow.items():
        if not hits:
            findings.append(f"{o.allow}:{n}: allow-list entry matches nothing (remove it): "
                            f"{' | '.join(k)}")
    if o.v:
        fw = sorted(f"{k}[{','.join(map(str, sorted(v)))}]" for k, v in sinks.items()
                    if k not in SINKS)
        print(f"{len(sources)} files, {len(calls)} calls, {len(literal)} literal macros; "
              f"forwarding sinks: {' '.join(fw)}")
    for f in findings:
        print(f)
    print(f"sql_params: {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
