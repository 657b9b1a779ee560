#!/usr/bin/env python3
"""Keeps docs/openapi.json true: checks it against the OpenAPI 3.1 object
model and JSON Schema 2020-12, against the route table in src/api/routes.c,
the problem map in src/core/problems.h and docs/API.md, and against a live
`racefree serve`: every documented operation is called with its examples
(and with the usual mistakes), and every answer must be a documented status
whose body validates against the documented schema.

usage: tests/openapi/check.py [--bin build/racefree] [--db URL] [--only SUBSTR]
  --db  the server's database (default: a new SQLite file); the test works
        in a workspace of its own, so a shared PostgreSQL database will do.
Ends with "N passed, N failed"; exits 1 when anything failed.

Debian 12 ships no OpenAPI 3.1 meta-schema (openapi-specification has 2.0
and 3.0 only) and no openapi-spec-validator, so the 3.1 object model is
written out below as a strict JSON Schema of our own, from the 3.1.0
specification text: fixed fields only, `x-` extensions allowed."""
import functools
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import uuid
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)
import jsonschema  # noqa: E402  (python3-jsonschema)
from jsonschema import Draft202012Validator, FormatChecker, RefResolver  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RF_BODY_MAX = 1024 * 1024  # src/http/http.h
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

passed = failed = 0
ONLY = None


def ok(name):
    global passed
    passed += 1
    print(f"ok {name}")


def bad(name, why):
    global failed
    failed += 1
    why = " ".join(str(why).split())  # one line per failure, however long the cause
    print(f"not ok {name}: {why[:600]}")


def case(name):
    """Runs the decorated check at once: it passes unless it returns a
    reason (or a list of them) or raises."""

    def run(fn):
        if ONLY and ONLY not in name:
            return fn
        try:
            why = fn()
        except Exception as e:  # a crash in a check is that check failing
            why = f"{type(e).__name__}: {e}"
        if isinstance(why, list):
            why = "; ".join(why[:8]) + (f" (+{len(why) - 8} more)" if len(why) > 8 else "")
        if why:
            bad(name, why)
        else:
            ok(name)
        return fn

    return run


# ---- the OpenAPI 3.1 object model ------------------------------------------


def obj(props, required=(), extensible=True, **kw):
    s = {"type": "object", "properties": props, "additionalProperties": False}
    if extensible:
        s["patternProperties"] = {"^x-": True}
    if required:
        s["required"] = list(required)
    s.update(kw)
    return s


def mapof(ref, key=None):
    s = {"type": "object", "additionalProperties": {"$ref": ref}}
    if key:
        s["propertyNames"] = {"pattern": key}
    return s


def or_ref(name):
    return {"if": {"type": "object", "required": ["$ref"]},
            "then": {"$ref": "#/$defs/reference"}, "else": {"$ref": f"#/$defs/{name}"}}


STR = {"type": "string"}
BOOL = {"type": "boolean"}
URI = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9+.-]*:"}
COMPONENT_KEY = "^[a-zA-Z0-9._-]+$"

OAS31 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$ref": "#/$defs/openapi",
    "$defs": {
        "openapi": obj({
            "openapi": {"type": "string", "pattern": r"^3\.1\.\d+(-.+)?$"},
            "info": {"$ref": "#/$defs/info"},
            "jsonSchemaDialect": URI,
            "servers": {"type": "array", "items": {"$ref": "#/$defs/server"}},
            "paths": {"$ref": "#/$defs/paths"},
            "webhooks": mapof("#/$defs/pathItemOrRef"),
            "components": {"$ref": "#/$defs/components"},
            "security": {"type": "array", "items": {"$ref": "#/$defs/securityRequirement"}},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
            "externalDocs": {"$ref": "#/$defs/externalDocs"},
        }, ["openapi", "info"], anyOf=[{"required": ["paths"]}, {"required": ["components"]},
                                       {"required": ["webhooks"]}]),
        "info": obj({
            "title": STR, "summary": STR, "description": STR, "termsOfService": STR,
            "contact": obj({"name": STR, "url": STR, "email": STR}),
            "license": obj({"name": STR, "identifier": STR, "url": STR}, ["name"],
                           not_={"required": ["identifier", "url"]}),
            "version": STR,
        }, ["title", "version"]),
        "server": obj({"url": STR, "description": STR, "variables": {
            "type": "object", "additionalProperties": obj(
                {"enum": {"type": "array", "items": STR, "minItems": 1}, "default": STR,
                 "description": STR}, ["default"])}}, ["url"]),
        "externalDocs": obj({"description": STR, "url": STR}, ["url"]),
        "tag": obj({"name": STR, "description": STR,
                    "externalDocs": {"$ref": "#/$defs/externalDocs"}}, ["name"]),
        "paths": {"type": "object", "patternProperties": {"^/": {"$ref": "#/$defs/pathItem"},
                                                          "^x-": True},
                  "additionalProperties": False},
        "pathItemOrRef": or_ref("pathItem"),
        "pathItem": obj(dict({m: {"$ref": "#/$defs/operation"} for m in METHODS}, **{
            "$ref": STR, "summary": STR, "description": STR,
            "servers": {"type": "array", "items": {"$ref": "#/$defs/server"}},
            "parameters": {"type": "array", "items": {"$ref": "#/$defs/parameterOrRef"}},
        })),
        "operation": obj({
            "tags": {"type": "array", "items": STR}, "summary": STR, "description": STR,
            "externalDocs": {"$ref": "#/$defs/externalDocs"}, "operationId": STR,
            "parameters": {"type": "array", "items": {"$ref": "#/$defs/parameterOrRef"}},
            "requestBody": {"$ref": "#/$defs/requestBodyOrRef"},
            "responses": {"$ref": "#/$defs/responses"},
            "callbacks": {"type": "object", "additionalProperties": {"$ref": "#/$defs/callbackOrRef"}},
            "deprecated": BOOL,
            "security": {"type": "array", "items": {"$ref": "#/$defs/securityRequirement"}},
            "servers": {"type": "array", "items": {"$ref": "#/$defs/server"}},
        }, ["responses"]),
        "responses": {"type": "object", "minProperties": 1,
                      "propertyNames": {"pattern": r"^([1-5](\d\d|XX)|default|x-.*)$"},
                      "patternProperties": {r"^([1-5](\d\d|XX)|default)$": {"$ref": "#/$defs/responseOrRef"},
                                            "^x-": True}},
        "response": obj({
            "description": STR,
            "headers": {"type": "object", "additionalProperties": {"$ref": "#/$defs/headerOrRef"}},
            "content": {"type": "object", "additionalProperties": {"$ref": "#/$defs/mediaType"}},
            "links": {"type": "object", "additionalProperties": {"$ref": "#/$defs/linkOrRef"}},
        }, ["description"]),
        "mediaType": obj({
            "schema": {"$ref": "#/$defs/schema"}, "example": True,
            "examples": {"type": "object", "additionalProperties": {"$ref": "#/$defs/exampleOrRef"}},
            "encoding": {"type": "object", "additionalProperties": {"$ref": "#/$defs/encoding"}},
        }, not_={"required": ["example", "examples"]}),
        "encoding": obj({"contentType": STR, "headers": {"type": "object"}, "style": STR,
                         "explode": BOOL, "allowReserved": BOOL}),
        "example": obj({"summary": STR, "description": STR, "value": True, "externalValue": STR},
                       not_={"required": ["value", "externalValue"]}),
        "parameter": obj({
            "name": STR, "in": {"enum": ["query", "header", "path", "cookie"]},
            "description": STR, "required": BOOL, "deprecated": BOOL, "allowEmptyValue": BOOL,
            "style": STR, "explode": BOOL, "allowReserved": BOOL,
            "schema": {"$ref": "#/$defs/schema"}, "example": True,
            "examples": {"type": "object", "additionalProperties": {"$ref": "#/$defs/exampleOrRef"}},
            "content": {"type": "object", "minProperties": 1, "maxProperties": 1,
                        "additionalProperties": {"$ref": "#/$defs/mediaType"}},
        }, ["name", "in"], oneOf=[{"required": ["schema"]}, {"required": ["content"]}],
            allOf=[{"if": {"properties": {"in": {"const": "path"}}},
                    "then": {"required": ["required"], "properties": {"required": {"const": True}}}},
                   {"not": {"required": ["example", "examples"]}}]),
        "header": obj({
            "description": STR, "required": BOOL, "deprecated": BOOL, "style": {"const": "simple"},
            "explode": BOOL, "schema": {"$ref": "#/$defs/schema"}, "example": True,
            "examples": {"type": "object", "additionalProperties": {"$ref": "#/$defs/exampleOrRef"}},
            "content": {"type": "object", "minProperties": 1, "maxProperties": 1},
        }, oneOf=[{"required": ["schema"]}, {"required": ["content"]}]),
        "requestBody": obj({"description": STR, "required": BOOL,
                            "content": {"type": "object", "minProperties": 1,
                                        "additionalProperties": {"$ref": "#/$defs/mediaType"}}},
                           ["content"]),
        "link": obj({"operationRef": STR, "operationId": STR, "parameters": {"type": "object"},
                     "requestBody": True, "description": STR,
                     "server": {"$ref": "#/$defs/server"}}),
        "callback": {"type": "object", "additionalProperties": {"$ref": "#/$defs/pathItemOrRef"}},
        "securityScheme": obj({
            "type": {"enum": ["apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"]},
            "description": STR, "name": STR, "in": {"enum": ["query", "header", "cookie"]},
            "scheme": STR, "bearerFormat": STR, "flows": {"type": "object"},
            "openIdConnectUrl": STR,
        }, ["type"], allOf=[
            {"if": {"properties": {"type": {"const": "http"}}}, "then": {"required": ["scheme"]}},
            {"if": {"properties": {"type": {"const": "apiKey"}}}, "then": {"required": ["name", "in"]}},
            {"if": {"properties": {"type": {"const": "oauth2"}}}, "then": {"required": ["flows"]}},
            {"if": {"properties": {"type": {"const": "openIdConnect"}}},
             "then": {"required": ["openIdConnectUrl"]}}]),
        "securityRequirement": {"type": "object", "additionalProperties": {"type": "array", "items": STR}},
        "reference": {"type": "object", "required": ["$ref"], "additionalProperties": False,
                      "properties": {"$ref": STR, "summary": STR, "description": STR}},
        # A Schema Object is a JSON Schema 2020-12 schema: checked on its own
        # with Draft202012Validator.check_schema (see below).
        "schema": {"type": ["object", "boolean"]},
        "components": obj({
            "schemas": mapof("#/$defs/schema", COMPONENT_KEY),
            "responses": mapof("#/$defs/responseOrRef", COMPONENT_KEY),
            "parameters": mapof("#/$defs/parameterOrRef", COMPONENT_KEY),
            "examples": mapof("#/$defs/exampleOrRef", COMPONENT_KEY),
            "requestBodies": mapof("#/$defs/requestBodyOrRef", COMPONENT_KEY),
            "headers": mapof("#/$defs/headerOrRef", COMPONENT_KEY),
            "securitySchemes": mapof("#/$defs/securitySchemeOrRef", COMPONENT_KEY),
            "links": mapof("#/$defs/linkOrRef", COMPONENT_KEY),
            "callbacks": mapof("#/$defs/callbackOrRef", COMPONENT_KEY),
            "pathItems": mapof("#/$defs/pathItemOrRef", COMPONENT_KEY),
        }),
    },
}
for _n in ("parameter", "requestBody", "response", "header", "example", "link", "callback",
           "securityScheme"):
    OAS31["$defs"][_n + "OrRef"] = or_ref(_n)


def fix_not(s):
    """obj() takes not_= since `not` is a keyword; rename it in place."""
    if isinstance(s, dict):
        if "not_" in s:
            s["not"] = s.pop("not_")
        for v in s.values():
            fix_not(v)
    elif isinstance(s, list):
        for v in s:
            fix_not(v)


fix_not(OAS31)

# ---- helpers on the document ----------------------------------------------

DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", re.I)
formats = FormatChecker(())


@formats.checks("date-time")
def _is_date_time(v):
    return not isinstance(v, str) or bool(DATE_TIME.match(v))


def deref(doc, node):
    """Follows a chain of local $refs; raises KeyError on a dangling one."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ptr = node["$ref"]
        if not ptr.startswith("#/"):
            raise KeyError(f"non-local $ref {ptr}")
        node = doc
        for part in ptr[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        seen += 1
        if seen > 20:
            raise KeyError("$ref loop")
    return node


def walk(node, path=""):
    """Yields (json-pointer, node) for every object and array in node."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, (dict, list)):
                yield from walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if isinstance(v, (dict, list)):
                yield from walk(v, f"{path}/{i}")


def operations(doc):
    for p, item in doc.get("paths", {}).items():
        for m in METHODS:
            if m in item:
                yield p, m, item[m]


def schemas_in(doc):
    """(where, schema) for every Schema Object in the document."""
    for name, s in doc.get("components", {}).get("schemas", {}).items():
        yield f"components.schemas.{name}", s
    for where, node in walk(doc):
        if where.startswith("/components/schemas"):
            continue
        if isinstance(node, dict) and "schema" in node and isinstance(node["schema"], (dict, bool)):
            if re.search(r"/(content/[^/]+|parameters/[^/]+|headers/[^/]+)$", where):
                yield where, node["schema"]


def validator(doc, schema):
    return Draft202012Validator(schema, resolver=RefResolver.from_schema(doc),
                                format_checker=formats)


def errors(doc, schema, value):
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator(doc, schema).iter_errors(value)]


def op_params(doc, path, method):
    item = doc["paths"][path]
    ps = {}
    for p in item.get("parameters", []) + item[method].get("parameters", []):
        p = deref(doc, p)
        ps[(p["name"], p["in"])] = p
    return ps


# ---- static checks ----------------------------------------------------------


def static_checks(doc):
    @case("document: OpenAPI 3.1 object model (strict, x- extensions only)")
    def _():
        v = Draft202012Validator(OAS31)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(doc)]

    @case("document: info.version is the binary's RF_VERSION")
    def _():
        m = re.search(r'#define RF_VERSION "([^"]+)"', read("src/main.c"))
        if not m or m.group(1) != doc["info"]["version"]:
            return f"src/main.c has {m and m.group(1)}, document {doc['info']['version']}"

    @case("document: every $ref resolves")
    def _():
        out = []
        for where, node in walk(doc):
            if isinstance(node, dict) and isinstance(node.get("$ref"), str):
                try:
                    deref(doc, node)
                except (KeyError, IndexError, ValueError) as e:
                    out.append(f"{where}: {e}")
        return out

    @case("document: every schema is valid JSON Schema 2020-12")
    def _():
        out = []
        for where, s in schemas_in(doc):
            try:
                Draft202012Validator.check_schema(s)
            except jsonschema.SchemaError as e:
                out.append(f"{where}: {e.message}")
        return out

    @case("document: operationIds unique, every operation has a 2xx response")
    def _():
        out, seen = [], set()
        for p, m, o in operations(doc):
            oid = o.get("operationId")
            if not oid or oid in seen:
                out.append(f"{m.upper()} {p}: operationId {oid!r} missing or repeated")
            seen.add(oid)
            if not any(c.startswith("2") for c in o["responses"]):
                out.append(f"{m.upper()} {p}: no 2xx response")
        return out

    @case("document: path templates and path parameters agree")
    def _():
        out = []
        for p, m, o in operations(doc):
            names = set(re.findall(r"\{([^}]+)\}", p))
            declared = {n for (n, i) in op_params(doc, p, m) if i == "path"}
            if names != declared:
                out.append(f"{m.upper()} {p}: template {sorted(names)}, declared {sorted(declared)}")
        return out

    @case("document: security schemes referenced exist; /v1 needs a key, the rest none")
    def _():
        out = []
        schemes = doc.get("components", {}).get("securitySchemes", {})
        for p, m, o in operations(doc):
            sec = o.get("security", doc.get("security", []))
            for req in sec:
                out += [f"{m.upper()} {p}: unknown scheme {k}" for k in req if k not in schemes]
            if p.startswith("/v1/") != bool(sec):
                out.append(f"{m.upper()} {p}: security {sec}")
        return out

    @case("document: examples validate against their schemas")
    def _():
        out = []
        for where, node in walk(doc):
            if not isinstance(node, dict):
                continue
            # Media types and parameters: example / examples.value.
            if "schema" in node and ("example" in node or "examples" in node):
                exs = [("example", node["example"])] if "example" in node else [
                    (k, deref(doc, e).get("value")) for k, e in node["examples"].items()]
                for k, v in exs:
                    out += [f"{where} {k}: {e}" for e in errors(doc, node["schema"], v)]
            # Schemas: the 2020-12 `examples` keyword (an array).
            if isinstance(node.get("examples"), list) and ("type" in node or "$ref" in node):
                for i, v in enumerate(node["examples"]):
                    out += [f"{where} examples[{i}]: {e}" for e in errors(doc, node, v)]
        return out

    @case("document: every request body has at least one example")
    def _():
        out = []
        for p, m, o in operations(doc):
            if "requestBody" in o:
                mt = deref(doc, o["requestBody"])["content"].get("application/json", {})
                if not mt.get("examples") and "example" not in mt:
                    out.append(f"{m.upper()} {p}")
        return out

    @case("document: problem responses are application/problem+json with status and codes")
    def _():
        out = []
        every = set(doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"])
        for where, node in walk(doc):
            if not (isinstance(node, dict) and "application/problem+json" in node.get("content", {})):
                continue
            s = node["content"]["application/problem+json"]["schema"]
            props = s.get("properties", {})
            codes = props.get("code", {}).get("enum")
            if not codes or not set(codes) <= every:
                out.append(f"{where}: codes {codes} not a subset of Problem.code")
            st = props.get("status", {}).get("const")
            key = where.rsplit("/", 1)[-1]
            if key.isdigit() and st != int(key):
                out.append(f"{where}: status const {st}")
        return out


def problem_codes_in(doc):
    """{code: {status, ...}} for every problem code the document lists."""
    found = {}
    for where, node in walk(doc):
        if isinstance(node, dict) and "application/problem+json" in node.get("content", {}):
            props = node["content"]["application/problem+json"]["schema"].get("properties", {})
            for c in props.get("code", {}).get("enum", []):
                found.setdefault(c, set()).add(props.get("status", {}).get("const"))
    return found


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


@functools.lru_cache(maxsize=None)
def problem_map():
    """{code: (status, title)}: the rows of RF_PROBLEM_MAP in src/core/problems.h."""
    src = read("src/core/problems.h")
    m = re.search(r"#define RF_PROBLEM_MAP\(XX\)(.*?)\n\n", src, re.S)
    if not m:
        raise ValueError("RF_PROBLEM_MAP not found in src/core/problems.h")
    body = m.group(1).replace("\\\n", " ")
    rows = re.findall(r'\bXX\(\w+,\s*(\d+),\s*(\w+),\s*"([^"]*)",\s*\w+\)', body)
    if len(rows) != body.count("XX("):
        raise ValueError(f"parsed {len(rows)} of {body.count('XX(')} map rows")
    return {code: (int(st), title) for st, code, title in rows}


def route_table():
    src = read("src/api/routes.c")
    m = re.search(r"rf_routes\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
    if not m:
        raise ValueError("rf_routes[] not found in src/api/routes.c")
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    rows = re.findall(r'\{\s*"([A-Z]+)"\s*,\s*"([^"]+)"\s*,\s*(\w+)\s*,\s*[^,]+,\s*"([^"]+)"\s*\}', body)
    lines = len(re.findall(r"^\s*\{", body, re.M))
    if len(rows) != lines:
        raise ValueError(f"parsed {len(rows)} of {lines} route lines")
    return rows


def code_checks(doc):
    @case("routes: every route of rf_routes[] is documented, with its name as operationId")
    def _():
        out = []
        for method, path, fn, name in route_table():
            o = doc["paths"].get(path, {}).get(method.lower())
            if o is None:
                out.append(f"{method} {path} ({name}) not in the document")
            elif o.get("operationId") != name:
                out.append(f"{method} {path}: operationId {o.get('operationId')}, route {name}")
        return out

    @case("routes: every documented operation is in rf_routes[]")
    def _():
        table = {(m.lower(), p) for m, p, _, _ in route_table()}
        return [f"{m.upper()} {p}" for p, m, _ in operations(doc) if (m, p) not in table]

    @case("codes: the document's problem codes and statuses are core/problems.h's rows")
    def _():
        # The build holds the two together too (api/openapi.c); this names
        # the difference in words when a tree is tested without building.
        table = {code: st for code, (st, _) in problem_map().items()}
        doc_codes = problem_codes_in(doc)
        out = [f"{c} is in the map, not documented" for c in sorted(set(table) - set(doc_codes))]
        out += [f"{c} is documented, not in the map" for c in sorted(set(doc_codes) - set(table))]
        out += [f"{c}: map {table[c]}, document {sorted(doc_codes[c])}"
                for c in sorted(set(table) & set(doc_codes)) if doc_codes[c] != {table[c]}]
        return out


def api_md_checks(doc):
    md = read("docs/API.md")

    @case("API.md: every endpoint it names is in the document")
    def _():
        out = []
        for m, p in re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/[^\s`]*)", md):
            p = p.split("?")[0].rstrip(".,;:)")
            if m.lower() not in doc["paths"].get(p, {}):
                out.append(f"{m} {p}")
        return out

    @case("API.md: names every documented operation")
    def _():
        named = {(m.lower(), p.split("?")[0].rstrip(".,;:)"))
                 for m, p in re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/[^\s`]*)", md)}
        return [f"{m.upper()} {p}" for p, m, _ in operations(doc) if (m, p) not in named]

    @case("API.md: its error table is the document's codes, with the same statuses")
    def _():
        rows = dict(re.findall(r"^\| `([a-z_]+)` \| (\d+) \|", md, re.M))
        doc_codes = problem_codes_in(doc)
        out = [f"{c}: API.md {s}, document {sorted(doc_codes.get(c, []))}"
               for c, s in rows.items() if {int(s)} != doc_codes.get(c)]
        out += [f"{c} not in API.md's table" for c in sorted(set(doc_codes) - set(rows))]
        return out


# ---- live checks ------------------------------------------------------------


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import rf_test  # noqa: E402


class Server(rf_test.Serve):
    def __init__(self, binary, tmp, db=None):
        super().__init__(binary, db or "sqlite:" + os.path.join(tmp, "rf.db"),
                         os.path.join(tmp, "serve.log"), args=["--provision-delay-ms", "0"])
        self.start(timeout=20)
        try:
            # A workspace of our own: the database may be shared and not new.
            _, self.key = rf_test.workspace_key(binary, self.db,
                                                "openapi-" + uuid.uuid4().hex[:12], timeout=30)
        except BaseException:
            self.stop()
            raise

    def request(self, method, path, body=None, headers=None, auth=True):
        h = dict(headers or {})
        if auth:
            h.setdefault("Authorization", f"Bearer {self.key}")
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()


def check_response(doc, path, method, status, headers, data):
    """Reasons the answer is not one the document describes for the operation."""
    try:
        return answer_errors(doc, path, method, status, headers, data)
    except Exception as e:  # e.g. a dangling $ref: reported by its own check too
        return [f"{type(e).__name__}: {e}"]


def answer_errors(doc, path, method, status, headers, data):
    o = doc["paths"][path].get(method, {"responses": {}})
    resp = o["responses"].get(str(status)) or o["responses"].get(f"{str(status)[0]}XX")
    if resp is None:
        # 405 is documented once, for every path, in components.
        if status == 405:
            resp = doc["components"]["responses"]["MethodNotAllowed"]
        else:
            return [f"status {status} not documented (body {data[:200]!r})"]
    resp = deref(doc, resp)
    out = []
    documented = {n.lower() for n in resp.get("headers", {})}
    for name in ("Idempotent-Replayed", "Retry-After", "Allow", "WWW-Authenticate", "ETag"):
        if name.lower() in headers and name.lower() not in documented:
            out.append(f"{status}: header {name} sent but not documented")
    for name, h in resp.get("headers", {}).items():
        if deref(doc, h).get("required") and name.lower() not in headers:
            out.append(f"{status}: header {name} missing")
        elif name.lower() in headers:
            hs = deref(doc, h).get("schema", {})
            v = headers[name.lower()]
            if deref(doc, hs).get("type") == "integer" and v.isdigit():
                v = int(v)
            out += [f"{status}: header {name}: {e}" for e in errors(doc, hs, v)]
    content = resp.get("content", {})
    if not content:
        if data:
            out.append(f"{status}: documented without a body, got {data[:80]!r}")
        return out
    ctype = headers.get("content-type", "").split(";")[0].strip()
    if ctype not in content:
        return out + [f"{status}: Content-Type {ctype!r}, documented {sorted(content)}"]
    schema = content[ctype].get("schema")
    if "json" in ctype:
        try:
            body = json.loads(data)
        except ValueError as e:
            return out + [f"{status}: body is not JSON: {e}"]
        out += [f"{status}: {e}" for e in errors(doc, schema, body)]
        if ctype == "application/problem+json" and isinstance(body, dict):
            if body.get("type") != f"urn:racefree:error:{body.get('code')}":
                out.append(f"{status}: type {body.get('type')} does not end with code")
            row = problem_map().get(body.get("code"))
            if row and (body.get("status"), body.get("title")) != row:
                out.append(f"{status}: {body.get('code')} answered as {body.get('status')} "
                           f"{body.get('title')!r}, the map says {row[0]} {row[1]!r}")
            # A replay is the stored answer byte for byte: its requestId is
            # the original request's, the one whose log lines tell its story.
            if body.get("requestId") != headers.get("x-request-id") and \
                    headers.get("idempotent-replayed") != "true":
                out.append(f"{status}: requestId differs from X-Request-Id")
    return out


def live_checks(doc, binary, db):
    tmp = tempfile.mkdtemp(prefix="rf-openapi-")
    try:
        srv = Server(binary, tmp, db)
    except Exception as e:
        bad("live: server starts", str(e))
        return
    ok("live: server starts")
    exercised = set()  # (method, path) called with a documented example
    ids = {}
    try:
        live_cases(doc, srv, exercised, ids)
    finally:
        rc = srv.stop()

        @case("live: the server exits 0 on SIGTERM")
        def _():
            if rc != 0:
                return f"exit {rc}; log tail:\n{open(srv.log).read()[-1500:]}"

    subprocess.run(["rm", "-rf", tmp], check=False)

    @case("live: every documented operation was called with its examples")
    def _():
        return [f"{m.upper()} {p}" for p, m, _ in operations(doc) if (m, p) not in exercised]


def examples_of(doc, o):
    if "requestBody" not in o:
        return [("no body", None)]
    mt = deref(doc, o["requestBody"])["content"]["application/json"]
    if "example" in mt:
        return [("example", mt["example"])]
    return [(k, deref(doc, e)["value"]) for k, e in mt["examples"].items()]


def new_key(srv):
    st, _, data = srv.request("POST", "/v1/keys", body={"remaining": 5})
    return json.loads(data)["keyId"] if st == 201 else "none"


# Operations that use their object up (a reroll can happen once, a delete
# leaves nothing): each call gets a new one.
FRESH = {("post", "/v1/keys/{keyId}/reroll"): new_key,
         ("delete", "/v1/keys/{keyId}"): new_key}


def fill(doc, path, method, ids, srv=None):
    """The URL for an operation: path parameters from objects made earlier in
    the run (a sub-path such as /v1/keys/{keyId}/credits uses its parent's),
    required query parameters from their examples."""
    url = path
    query = []
    for (name, where), p in op_params(doc, path, method).items():
        if where == "path":
            if srv and (method, path) in FRESH:
                value = FRESH[(method, path)](srv)
            elif (path, name) in ids:
                value = ids[(path, name)]
            else:
                value = next(v for (pp, n), v in ids.items()
                             if n == name and path.startswith(pp + "/"))
            url = url.replace("{" + name + "}", value)
        elif where == "query" and p.get("required"):
            query.append(f"{name}={p['example']}")
    return url + ("?" + "&".join(query) if query else "")


# Calling order: each operation after those that make what it reads; the
# DELETE last. Every documented operation must appear here (checked).
ORDER = ["healthz", "readyz", "metrics", "openapi",
         "users.create", "users.get", "users.patch", "users.list",
         "events.create", "events.get", "events.list",
         "identities.create", "identities.get", "identities.list", "identities.patch",
         "keys.create", "keys.get", "keys.patch", "keys.list", "keys.verify", "keys.credits",
         "keys.reroll", "keys.delete",
         "resources.create", "resources.get", "resources.list", "resources.delete",
         "users.delete", "events.delete", "identities.delete"]

# Deletes whose object later checks still need (a PATCH's idempotency cases
# run after this loop): each deletes one made for it alone.
DOOMED = {"users.delete": ("/v1/users", {"email": "doomed@example.com"},
                           lambda b: b["user"]["id"]),
          "events.delete": ("/v1/events", {"name": "Doomed"}, lambda b: b["event"]["slug"]),
          "identities.delete": ("/v1/identities", {"externalId": "doomed"},
                                lambda b: b["identity"]["externalId"])}

# Which response field names the object an operation's path parameter wants.
MAKES = {"users.create": ("/v1/users/{id}", "id", lambda b: b["user"]["id"]),
         "events.create": ("/v1/events/{slug}", "slug", lambda b: b["event"]["slug"]),
         "identities.create": ("/v1/identities/{externalId}", "externalId",
                               lambda b: b["identity"]["externalId"]),
         "keys.create": ("/v1/keys/{keyId}", "keyId", lambda b: b["keyId"]),
         "resources.create": ("/v1/resources/{id}", "id", lambda b: b["resource"]["id"])}


def idempotency_cases(doc, o, path, method, body, expect, url, url2):
    """url: one object for the keyed calls, so that a replay is of the same
    request; url2 another (the same but for FRESH operations) for the
    refused request and its corrected retry."""
    key = "openapi-" + uuid.uuid4().hex
    if "externalId" in body and path == "/v1/identities":
        # The example's identity exists by now; a 409 would not be stored.
        body = dict(body, externalId="idem-" + key[-12:])
    first = expect("with an Idempotency-Key", path, method, None, body=body,
                   headers={"Idempotency-Key": key}, url=url)
    if not first:
        return
    again = expect("replayed", path, method, first[0], body=body,
                   headers={"Idempotency-Key": key}, url=url)
    name = f"live: {method.upper()} {path} replay is marked and documented"
    if again and (not ONLY or ONLY in name):
        doc_headers = deref(doc, o["responses"][str(again[0])]).get("headers", {})
        same = again[2] == first[2]
        if method == "post" and path in ("/v1/keys", "/v1/keys/{keyId}/reroll") and not same:
            # The one exception to byte-for-byte: a new key's plaintext is
            # never stored, so its replay says "key": null.
            a, b = json.loads(again[2]), json.loads(first[2])
            same = a.pop("key", "") is None and b.pop("key", None) and a == b
        if again[1].get("idempotent-replayed") != "true" or not same:
            bad(name, f"Idempotent-Replayed {again[1].get('idempotent-replayed')}, "
                      f"same body {same}")
        elif "Idempotent-Replayed" not in doc_headers:
            bad(name, f"{again[0]} does not document Idempotent-Replayed")
        else:
            ok(name)
    # A 4xx given before the handler wrote is not stored: the same request
    # runs again, and so does the corrected one, with the same key.
    bad_body = dict(body, zzUnknown=1)
    again = fixed = None
    if expect("with an unknown field and a key", path, method, 422, body=bad_body,
              headers={"Idempotency-Key": key + "-4xx"}, url=url2):
        again = expect("with an unknown field, again", path, method, 422, body=bad_body,
                       headers={"Idempotency-Key": key + "-4xx"}, url=url2)
    if again:
        fixed_body = body
        if path == "/v1/identities":
            fixed_body = dict(body, externalId="fix-" + key[-12:])
        fixed = expect("corrected, with the refused request's key", path, method, None,
                       body=fixed_body, headers={"Idempotency-Key": key + "-4xx"}, url=url2)
    name = f"live: {method.upper()} {path} a refused 422 is not stored; the corrected retry runs"
    if again and fixed and (not ONLY or ONLY in name):
        if again[1].get("idempotent-replayed") or fixed[1].get("idempotent-replayed"):
            bad(name, "a refused request was replayed")
        else:
            ok(name)
    # The fingerprint covers the body bytes: one more space is another request.
    expect("with a reused Idempotency-Key", path, method, 422,
           body=json.dumps(body).encode() + b" ",
           headers={"Idempotency-Key": key, "Content-Type": "application/json"}, url=url)


def live_cases(doc, srv, exercised, ids):
    by_id = {o["operationId"]: (p, m, o) for p, m, o in operations(doc)}

    @case("live: GET /openapi.json is docs/openapi.json, as application/json")
    def _():
        st, h, data = srv.request("GET", "/openapi.json", auth=False)
        if st != 200 or h.get("content-type", "").split(";")[0] != "application/json":
            return f"status {st}, Content-Type {h.get('content-type')}"
        if json.loads(data) != doc:
            return "the served document differs from docs/openapi.json (stale build?)"

    for oid in ORDER + sorted(set(by_id) - set(ORDER)):
        if oid not in by_id:
            bad(f"live: {oid}", "in the calling order but not in the document")
            continue
        path, method, o = by_id[oid]
        for label, body in examples_of(doc, o):
            name = f"live: {method.upper()} {path} [{label}] answers as documented"
            if ONLY and ONLY not in name:
                continue
            try:
                url = fill(doc, path, method, ids, srv)
                if oid in DOOMED:
                    mk_path, mk_body, mk_id = DOOMED[oid]
                    _, _, made = srv.request("POST", mk_path, body=mk_body)
                    url = re.sub(r"\{[^}]+\}", mk_id(json.loads(made)), path)
            except (KeyError, StopIteration, ValueError, TypeError) as e:
                bad(name, f"no object for path parameter {e!r}")
                continue
            st, h, data = srv.request(method.upper(), url, body=body,
                                      auth=o.get("security", doc.get("security")) != [])
            why = check_response(doc, path, method, st, h, data)
            if not 200 <= st < 300:
                why.insert(0, f"a documented example got {st}: {data[:200]!r}")
            elif oid in MAKES and (MAKES[oid][0], MAKES[oid][1]) not in ids:
                # Kept even when the body fails its schema: one wrong field
                # should fail one check, not every later one.
                try:
                    ids[(MAKES[oid][0], MAKES[oid][1])] = MAKES[oid][2](json.loads(data))
                except (ValueError, KeyError, TypeError) as e:
                    why.append(f"no object to use later: {e!r}")
            if why:
                bad(name, "; ".join(why))
                continue
            ok(name)
            exercised.add((method, path))

    # The usual mistakes, on every operation they apply to: each answer must
    # be a documented status with a documented problem code.
    def expect(label, path, method, want, url=None, **kw):
        """Calls the operation; want is the status it must answer (None: a 2xx)."""
        name = f"live: {method.upper()} {path} {label} -> {want or '2xx'}"
        if ONLY and ONLY not in name:
            return None
        try:
            st, h, data = srv.request(method.upper(), url or fill(doc, path, method, ids, srv),
                                      **kw)
        except (KeyError, StopIteration) as e:
            bad(name, f"no object for path parameter {e}")
            return None
        why = check_response(doc, path, method, st, h, data)
        if want is None and not 200 <= st < 300:
            why.insert(0, f"status {st}, want a 2xx: {data[:200]!r}")
        elif want is not None and st != want:
            why.insert(0, f"status {st}: {data[:200]!r}")
        if why:
            bad(name, "; ".join(why))
        else:
            ok(name)
        return st, h, data

    for path, method, o in operations(doc):
        secured = o.get("security", doc.get("security")) != []
        if secured:
            expect("without a root key", path, method, 401, auth=False)
            expect("with an unknown root key", path, method, 401,
                   headers={"Authorization": "Bearer rk_unknown"})
        if any(w == "path" for (_, w) in op_params(doc, path, method)):
            url = re.sub(r"\{[^}]+\}", "nosuch" + uuid.uuid4().hex[:8], path)
            body = examples_of(doc, o)[0][1]
            expect("of a missing object", path, method, 404, url=url, body=body)
        if any(n == "limit" for (n, _) in op_params(doc, path, method)):
            expect("with limit=0", path, method, 422, url=path + "?limit=0")
            expect("with a bad cursor", path, method, 422, url=path + "?cursor=zz")
        if "requestBody" not in o:
            continue
        body = examples_of(doc, o)[0][1]
        raw = json.dumps(body).encode()
        expect("as text/plain", path, method, 415, body=raw, headers={"Content-Type": "text/plain"})
        expect("with broken JSON", path, method, 400, body=b'{"a":',
               headers={"Content-Type": "application/json"})
        expect("with an unknown field", path, method, 422, body=dict(body, zzUnknown=1))
        expect("with a bad Idempotency-Key", path, method, 400, body=body,
               headers={"Idempotency-Key": '"unterminated'})
        if any(n == "Idempotency-Key" for (n, _) in op_params(doc, path, method)):
            try:
                url = fill(doc, path, method, ids, srv)
                url2 = fill(doc, path, method, ids, srv)
            except (KeyError, StopIteration):
                url = url2 = None
            idempotency_cases(doc, o, path, method, body, expect, url, url2)

    # Each domain error once, on its operation: status and code must be the
    # ones the operation documents.
    st, _, data = srv.request("POST", "/v1/users", body={"email": "holder@example.com"})
    holder = json.loads(data)["user"]["id"] if st in (200, 201) else "none"
    srv.request("PATCH", f"/v1/users/{holder}", body={"username": "Taken-Name"})
    for oid, body, want, code in [
        ("users.create", {"name": "No Email"}, 422, "missing_field"),
        ("users.create", {"email": 5}, 422, "invalid_field"),
        ("users.create", {"email": "no-at-sign"}, 422, "invalid_email"),
        ("users.create", {"email": "a@b.c", "name": ""}, 422, "invalid_name"),
        ("users.patch", {"username": "-bad-"}, 422, "invalid_username"),
        ("users.patch", {"username": "Admin"}, 422, "username_reserved"),
        ("users.patch", {"username": "taken-name"}, 409, "username_taken"),
        ("events.create", {"name": "x", "startsAt": "tomorrow"}, 422, "invalid_starts_at"),
        ("identities.create", {"externalId": "user_123"}, 409, "identity_exists"),
        ("identities.create", {"externalId": "a/b"}, 422, "invalid_external_id"),
        ("keys.create", {"meta": {"x": "y" * 5000}}, 422, "invalid_meta"),
        ("keys.create", {"expires": 1}, 422, "invalid_expires"),
        ("keys.create", {"remaining": -1}, 422, "invalid_remaining"),
        ("keys.patch", {"name": None, "enabled": "yes"}, 422, "invalid_field"),
        ("keys.patch", {"ratelimits": [{"name": "a b", "limit": 1, "duration": 1000}]}, 422,
         "invalid_ratelimits"),
        ("keys.patch", {"refill": {"interval": "hourly", "amount": 1}}, 422, "invalid_refill"),
        ("keys.verify", {"key": "rf_x", "credits": {"cost": -1}}, 422, "invalid_credits"),
        ("keys.credits", {"op": "multiply", "value": 2}, 422, "invalid_credits"),
        ("keys.reroll", {"expiration": -1}, 422, "invalid_expires"),
        ("resources.create", {"type": "mysql", "name": "x"}, 422, "invalid_type"),
        ("keys.verify", {"key": "rf_x"}, 413, "payload_too_large"),
    ]:
        path, method, _ = by_id[oid]
        # 413 is decided on the declared length, before the body is read:
        # declaring it (and sending little) spares a write into a closed socket.
        h = {"Content-Length": str(RF_BODY_MAX + 1)} if want == 413 else {}
        r = expect(f"{json.dumps(body)[:40]} ({code})", path, method, want, body=body, headers=h)
        if r and json.loads(r[2]).get("code") != code:
            bad(f"live: {oid} {code}", f"code {json.loads(r[2]).get('code')}")

    expect("(a path it does not take)", "/v1/users", "put", 405, url="/v1/users", body={})

    # Conditional PATCHes: the ETag a GET gives is the one If-Match takes;
    # a stale one is 412 and a malformed one 400, each as documented.
    for oid, get_oid, body in [("users.patch", "users.get", {"name": "Cond"}),
                               ("keys.patch", "keys.get", {"name": "cond"}),
                               ("identities.patch", "identities.get", {"meta": {"c": 1}})]:
        path, method, _ = by_id[oid]
        try:
            url = fill(doc, path, method, ids)
        except KeyError as e:
            bad(f"live: {oid} If-Match", f"no object for path parameter {e}")
            continue
        _, gh, _ = srv.request("GET", url)
        etag = gh.get("etag", "")
        r = expect("with If-Match of the current ETag", path, method, None, body=body,
                   headers={"If-Match": etag})
        if r and r[1].get("etag") == etag:
            bad(f"live: {oid} If-Match", f"the ETag did not change: {etag}")
        expect("with If-Match of the old ETag", path, method, 412, body=body,
               headers={"If-Match": etag})
        expect("with a malformed If-Match", path, method, 400, body=body,
               headers={"If-Match": "3"})

    @case("live: an unknown path is 404 not_found")
    def _():
        st, h, data = srv.request("GET", "/v1/nosuchthing")
        if st != 404 or json.loads(data).get("code") != "not_found":
            return f"status {st}: {data[:200]!r}"

    @case("live: a new key with credits verifies VALID, and the verdict validates")
    def _():
        st, h, data = srv.request("POST", "/v1/keys", body={"externalId": "user_123",
                                                             "remaining": 2})
        if st != 201:
            return f"creating a key: {st}"
        path, method, _ = by_id["keys.verify"]
        st, h, data = srv.request("POST", path, body={"key": json.loads(data)["key"]})
        why = check_response(doc, path, method, st, h, data)
        v = json.loads(data)
        if v.get("code") != "VALID" or v.get("remaining") != 1:
            why.append(f"code {v.get('code')}, remaining {v.get('remaining')}")
        if (v.get("identity") or {}).get("externalId") != "user_123":
            why.append(f"identity {v.get('identity')}")
        return why


class TimeLimit(BaseException):
    """Not an Exception: no check may catch it as its own failure."""


def main(argv):
    global ONLY
    binary = os.path.join(ROOT, "build", "racefree")
    db = None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--bin" and args:
            binary = os.path.abspath(args.pop(0))
        elif a == "--db" and args:
            db = args.pop(0)
        elif a == "--only" and args:
            ONLY = args.pop(0)
        else:
            sys.stderr.write(__doc__)
            return 2
    # A hard bound on the whole run, whatever hangs; the server is still
    # stopped on the way out (live_checks' finally).
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeLimit()))
    signal.alarm(300)
    try:
        doc = json.loads(read("docs/openapi.json"))
        ok("document: docs/openapi.json is JSON")
    except ValueError as e:
        bad("document: docs/openapi.json is JSON", str(e))
        doc = None
    try:
        if doc is not None:
            static_checks(doc)
            code_checks(doc)
            api_md_checks(doc)
            if os.access(binary, os.X_OK):
                live_checks(doc, binary, db)
            else:
                bad("live: server binary", f"{binary} not found; build it or pass --bin")
    except TimeLimit:
        bad("time limit", "the run took over 300 s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
