#!/usr/bin/env bash
# `racefree probe --report FILE`, end to end: real bursts against the racy
# fixture write the HTML report, the file is checked (self-contained, one
# timeline row per request, hostile response bodies escaped), and headless
# Chromium renders it: a screenshot that must show the timeline, and a DOM
# dump that must hold the same rows. Ends with "N passed, N failed".
#
# usage: tests/probe/report_html.sh [--bin build/racefree] [--fixture build/probe-fixture]
# The screenshot is kept in $REPORT_SCREENSHOT_DIR (default: report-html/
# next to the binary, e.g. build/report-html/) and its path printed.
# Chromium is required (Debian package `chromium`): without it the test fails.
# The fixture listens on 127.0.0.1 only and is stopped by PID; every command
# runs under `timeout`; the whole script gives up after 5 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/support/lib.sh

BIN=./build/racefree
FIXTURE=./build/probe-fixture
while [ $# -gt 0 ]; do
    case $1 in
    --bin) BIN=$2; shift 2 ;;
    --fixture) FIXTURE=$2; shift 2 ;;
    *) echo "usage: $0 [--bin PATH] [--fixture PATH]" >&2; exit 2 ;;
    esac
done

SHOT_DIR=${REPORT_SCREENSHOT_DIR:-$(dirname "$BIN")/report-html}
mkdir -p "$SHOT_DIR" || exit 2
SHOT_DIR=$(cd "$SHOT_DIR" && pwd)
rf_init report 300

ok() { rf_ok "$1"; }
bad() { rf_bad "$1" "$2"; }
# Chromium's complaints about the missing D-Bus are noise here.
show() {
    [ -f "$1" ] && grep -v 'dbus\|unexpected operator' "$1" | sed 's/^/    | /' | head -"${2:-20}"
}

start_server() { rf_start_server "$@"; }

CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
# A profile of our own: other Chromium runs on the machine cannot collide
# with it, and nothing is left in $HOME.
chrome() {
    timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --user-data-dir="$TMP/chrome" \
        --no-first-run --disable-extensions --hide-scrollbars "$@"
}

# Checks a report file: self-contained, ROWS timeline rows in BURSTS SVGs
# with data-i 0..n-1 in each, nothing from the server parsed as markup.
check_report() {
    python3 - "$@" <<'EOF'
import sys
from html.parser import HTMLParser

path, rows, bursts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
doc = open(path, encoding="utf-8").read()  # must be valid UTF-8
problems = []
# Elements that load or run something, attributes that point elsewhere.
LOADERS = {"script", "link", "img", "iframe", "object", "embed", "audio", "video", "source",
           "base", "form", "frame", "image", "use", "foreignobject", "track", "input"}
URL_ATTRS = {"src", "href", "xlink:href", "action", "formaction", "srcset", "poster", "data",
             "background", "ping", "manifest"}

class P(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tl = []          # data-i of the rows of each timeline svg
        self.svgs = 0
        self.classes = set()
        self.style = False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in LOADERS:
            problems.append("element <%s>" % tag)
        for k, v in attrs:
            v = v or ""
            if k in URL_ATTRS:
                problems.append("<%s %s=%r>" % (tag, k, v))
            if k.startswith("on"):
                problems.append("event handler <%s %s=%r>" % (tag, k, v))
            if "://" in v or "url(" in v:
                problems.append("reference in <%s %s=%r>" % (tag, k, v))
        if tag == "svg":
            self.svgs += 1
            if "tl" in a.get("class", "").split():
                self.tl.append([])
        if tag == "g" and "req" in a.get("class", "").split():
            if not self.tl:
                problems.append("row outside a timeline")
            else:
                self.tl[-1].append(int(a.get("data-i", "-1")))
            self.classes.update(a["class"].split())
        self.style = tag == "style"
    def handle_endtag(self, tag):
        self.style = False
    def handle_data(self, d):
        if self.style and ("url(" in d or "@import" in d or "://" in d):
            problems.append("style loads something")

p = P()
p.feed(doc)
p.close()
if "Content-Security-Policy" not in doc:
    problems.append("no Content-Security-Policy")
got = sum(len(t) for t in p.tl)
if got != rows:
    problems.append("%d rows, want %d" % (got, rows))
if len(p.tl) != bursts:
    problems.append("%d timelines, want %d" % (len(p.tl), bursts))
for k, t in enumerate(p.tl):
    if t != list(range(len(t))):
        problems.append("timeline %d: rows %s are not 0..n-1 in order" % (k + 1, t[:10]))
# The legend and one svg per burst; a body's "<svg onload=...>" must not count.
if p.svgs != bursts + 1:
    problems.append("%d svg elements, want %d" % (p.svgs, bursts + 1))
for want in sys.argv[4:]:
    if want not in p.classes:
        problems.append("no row of class %s" % want)
for x in problems:
    print("   ", x)
print("rows %d in %d timelines, classes %s" % (got, len(p.tl), " ".join(sorted(p.classes))))
sys.exit(1 if problems else 0)
EOF
}

# Decodes the screenshot (PNG, stdlib only) and counts pixels of the
# timeline's pale "waiting" bars: the legend holds a few hundred, a drawn
# timeline thousands. Prints "WIDTHxHEIGHT pale=N solid=N".
png_pixels() {
    python3 - "$1" <<'EOF'
import struct, sys, zlib

data = open(sys.argv[1], "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit("not a PNG")
pos, idat = 8, []
while pos < len(data):
    ln, typ = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + ln]
    pos += 12 + ln
    if typ == b"IHDR":
        w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
    elif typ == b"IDAT":
        idat.append(body)
if depth != 8 or ctype not in (2, 6) or interlace:
    sys.exit("unexpected PNG format depth %d type %d" % (depth, ctype))
bpp = 3 if ctype == 2 else 4
stride = w * bpp
raw = zlib.decompress(b"".join(idat))
prev = bytearray(stride)
colours = {"2xx": (0x2B, 0x8A, 0x3E), "4xx": (0xF0, 0x8C, 0x00), "5xx": (0xE0, 0x31, 0x31),
           "err": (0x70, 0x48, 0xE8)}
pale = {tuple(round(255 - 0.38 * (255 - c)) for c in rgb) for rgb in colours.values()}
solid = set(colours.values())
npale = nsolid = 0
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    if f == 1:
        for x in range(bpp, stride):
            line[x] = (line[x] + line[x - bpp]) & 255
    elif f == 2:
        line = bytearray((a + b) & 255 for a, b in zip(line, prev))
    elif f == 3:
        for x in range(stride):
            line[x] = (line[x] + (((line[x - bpp] if x >= bpp else 0) + prev[x]) >> 1)) & 255
    elif f == 4:
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    for x in range(0, stride, bpp):
        px = tuple(line[x:x + 3])
        if px in solid:
            nsolid += 1
        else:
            for q in pale:
                if abs(px[0] - q[0]) <= 6 and abs(px[1] - q[1]) <= 6 and abs(px[2] - q[2]) <= 6:
                    npale += 1
                    break
print("%dx%d pale=%d solid=%d" % (w, h, npale, nsolid))
EOF
}

if [ -z "$CHROMIUM" ]; then
    bad chromium "chromium is not installed (Debian package \`chromium\`, installed by scripts/deps.sh): the report cannot be rendered"
fi
for f in "$BIN" "$FIXTURE"; do
    if [ ! -x "$f" ]; then
        bad build "$f missing (make BUILD=... racefree probe-fixture)"
        echo "report: $passed passed, $failed failed"
        exit 1
    fi
done

# A 5 ms gap between check and insert: the race the timeline shows.
start_server "$TMP/fixture.log" "$FIXTURE" --delay-us 5000 --max-seconds 300 || exit 1
FX=http://127.0.0.1:$PORT

# ---- one burst of 20, every status class the fixture has ----------------------
# Request i goes to line (i mod 10) of the file: creates (2xx, racing on one
# email), /fail (500), /nothing (404) and /close (no response). The email
# is hostile markup, which the fixture echoes in every 201 body.
printf '%s\n' v1/users v1/users v1/users v1/users v1/users v1/users fail nothing v1/users close \
    >"$TMP/paths.txt"
REPORT=$TMP/burst.html
timeout 60 "$BIN" probe -n 20 --var "p=@$TMP/paths.txt" \
    -d '{"email":"x</script><svg onload=alert(1)>@example.com"}' \
    --expect-status 201=1 --expect-distinct .user.id=1 --report "$REPORT" \
    "$FX/{{var.p}}" >"$TMP/out" 2>"$TMP/err"
rc=$?
# Requests without a response make the exit status 2; the report is written all the same.
if [ $rc -eq 2 ] && [ -s "$REPORT" ] && grep -q "2 requests got no response" "$TMP/err"; then
    ok "burst-report-written ($(wc -c <"$REPORT") bytes)"
else
    bad burst-report-written "exit $rc, want 2 and a report"
    show "$TMP/out"
    show "$TMP/err"
fi
if check_report "$REPORT" 20 1 c2xx c4xx c5xx cerr >"$TMP/check" 2>&1; then
    ok "burst-report-content ($(tail -1 "$TMP/check"))"
else
    bad burst-report-content "report file not as expected"
    show "$TMP/check"
fi
if grep -qF 'x&lt;/script&gt;&lt;svg onload=alert(1)&gt;@example.com' "$REPORT" &&
    ! grep -qF '<svg onload' "$REPORT" && ! grep -qiF '<script' "$REPORT"; then
    ok burst-report-escaped
else
    bad burst-report-escaped "the hostile body is not escaped"
fi

if [ -n "$CHROMIUM" ]; then
    SHOT=$SHOT_DIR/report-burst.png
    rm -f "$SHOT"
    chrome --screenshot="$SHOT" --window-size=1200,900 "file://$REPORT" >"$TMP/chrome.log" 2>&1
    rc=$?
    size=$(stat -c %s "$SHOT" 2>/dev/null || echo 0)
    if [ $rc -eq 0 ] && [ "$size" -gt 10000 ] && [ "$(head -c 4 "$SHOT" | od -An -c | tr -d ' ')" = '211PNG' ]; then
        ok "chromium-screenshot ($size bytes)"
    else
        bad chromium-screenshot "exit $rc, $size bytes at $SHOT"
        show "$TMP/chrome.log"
    fi
    px=$(png_pixels "$SHOT" 2>&1)
    pale=$(echo "$px" | sed -n 's/.*pale=\([0-9]*\).*/\1/p')
    solid=$(echo "$px" | sed -n 's/.*solid=\([0-9]*\).*/\1/p')
    # The pale bars of 20 rows cover thousands of pixels, the legend's sample
    # row 600; solid bars are in the rows, the legend and the histogram.
    if [[ $px == 1200x900* ]] && [ "${pale:-0}" -ge 3000 ] && [ "${solid:-0}" -ge 1000 ]; then
        ok "chromium-screenshot-shows-timeline ($px)"
    else
        bad chromium-screenshot-shows-timeline "$px"
    fi
    echo "    screenshot: $SHOT"

    chrome --dump-dom "file://$REPORT" >"$TMP/dom.html" 2>"$TMP/chrome.log"
    rc=$?
    rows=$(grep -o '<g class="req ' "$TMP/dom.html" | wc -l)
    svgs=$(grep -o '<svg' "$TMP/dom.html" | wc -l)
    if [ $rc -eq 0 ] && [ "$rows" -eq 20 ] && [ "$svgs" -eq 2 ] && ! grep -q 'onload="' "$TMP/dom.html" &&
        grep -q 'data-i="19"' "$TMP/dom.html"; then
        ok "chromium-dom (20 rows, 2 svg elements)"
    else
        bad chromium-dom "exit $rc, $rows rows, $svgs svg elements (want 20 and 2)"
        show "$TMP/chrome.log"
    fi
fi

# ---- several bursts: one timeline each ---------------------------------------------
REPORT3=$TMP/bursts.html
timeout 60 "$BIN" probe -n 8 --rounds 3 -d '{"email":"r-{{round}}@example.com"}' \
    --expect-status 201=1 --expect-no-5xx --verify "$FX/v1/users?email=r-{{round}}@example.com" \
    --expect-verify-count .data=1 --report "$REPORT3" "$FX/v1/users" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -le 1 ] && check_report "$REPORT3" 24 3 c2xx >"$TMP/check" 2>&1 &&
    grep -q 'data-round="3"' "$REPORT3" && grep -q 'All bursts together' "$REPORT3" &&
    grep -q "verify-count .data=1" "$REPORT3"; then
    ok "bursts-report ($(tail -1 "$TMP/check"))"
else
    bad bursts-report "exit $rc or report not as expected"
    show "$TMP/check"
    show "$TMP/err"
fi
if [ -n "$CHROMIUM" ]; then
    chrome --dump-dom "file://$REPORT3" >"$TMP/dom3.html" 2>"$TMP/chrome.log"
    rows=$(grep -o '<g class="req ' "$TMP/dom3.html" | wc -l)
    tls=$(grep -o '<svg class="tl"' "$TMP/dom3.html" | wc -l)
    if [ "$rows" -eq 24 ] && [ "$tls" -eq 3 ]; then
        ok "bursts-chromium-dom (24 rows in 3 timelines)"
    else
        bad bursts-chromium-dom "$rows rows in $tls timelines, want 24 in 3"
    fi
fi

# ---- a report that cannot be written is refused before anything is sent ---------
timeout 30 "$BIN" probe -n 2 --report "$TMP/no-such-dir/r.html" "$FX/v1/users" >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -eq 2 ] && grep -q -- "--report: cannot create report" "$TMP/err" && ! grep -q "round 1" "$TMP/out"; then
    ok report-unwritable
else
    bad report-unwritable "exit $rc"
    show "$TMP/err"
fi

kill -TERM "$WATCHDOG" 2>/dev/null
rf_summary report
