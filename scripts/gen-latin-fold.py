#!/usr/bin/env python3
"""Generate src/core/latin_fold.h, the Latin-letter -> ASCII table used by slugify.

    python3 scripts/gen-latin-fold.py > src/core/latin_fold.h
    python3 scripts/gen-latin-fold.py | cmp - src/core/latin_fold.h   # is it current?

Input: UnicodeData.txt (default /usr/share/unicode/UnicodeData.txt, Debian package
unicode-data); another path may be given as the only argument. Python 3 stdlib only.

How a code point gets its replacement:
  1. Only letters and decimal digits (general category L* or Nd) in the Latin-bearing
     blocks listed in BLOCKS are considered: symbols, numerals such as Roman numerals and
     superscripts stay out, so they become separators in a slug.
  2. Its decomposition is followed recursively. Canonical decompositions and the <compat>,
     <font> and <wide> compatibility tags are followed; the others (<super>, <sub>,
     <circle>, <square>, <fraction>, ...) are not, because a slug should not turn "m²" into
     "m2" or "Ⓐ" into "a" (the same choice as CLDR's Latin-ASCII transform).
  3. Letters that have no decomposition to ASCII use EXPLICIT below, whose replacements are
     CLDR's Latin-ASCII transliterations.
  4. Nonspacing marks (Mn) in the result are dropped; what is left must be 1-3 ASCII letters
     or digits, else the code point gets no entry.
  5. A letter's simple upper/lower-case partner in BLOCKS gets the same replacement, so a name
     typed in capitals gives the same slug (e.g. U+0220 shares U+019E's entry).
"""

import os
import re
import sys

DEFAULT_UCD = "/usr/share/unicode/UnicodeData.txt"

# (first, last, block name) -- the blocks whose letters may fold to ASCII.
BLOCKS = [
    (0x00C0, 0x00FF, "Latin-1 Supplement (letters)"),
    (0x0100, 0x017F, "Latin Extended-A"),
    (0x0180, 0x024F, "Latin Extended-B"),
    (0x0250, 0x02AF, "IPA Extensions"),
    (0x1D00, 0x1D7F, "Phonetic Extensions"),
    (0x1D80, 0x1DBF, "Phonetic Extensions Supplement"),
    (0x1E00, 0x1EFF, "Latin Extended Additional"),
    (0x2100, 0x214F, "Letterlike Symbols"),
    (0x2C60, 0x2C7F, "Latin Extended-C"),
    (0xA720, 0xA7FF, "Latin Extended-D"),
    (0xAB30, 0xAB6F, "Latin Extended-E"),
    (0xFB00, 0xFB06, "Alphabetic Presentation Forms (Latin ligatures)"),
    (0xFF00, 0xFFEF, "Halfwidth and Fullwidth Forms"),
    (0x1D400, 0x1D7FF, "Mathematical Alphanumeric Symbols"),
]

FOLLOWED_TAGS = {"", "<compat>", "<font>", "<wide>"}

# Letters with no decomposition to ASCII. Replacements are CLDR's Latin-ASCII transform
# (unicode-org/icu icu4c/source/data/translit/Latin_ASCII.txt) unless marked otherwise.
# Each name is checked against UnicodeData.txt, so a mistyped code point fails the build.
EXPLICIT = [
    (0x00C6, "ae", "LATIN CAPITAL LETTER AE"),
    (0x00D0, "d", "LATIN CAPITAL LETTER ETH"),
    (0x00D8, "o", "LATIN CAPITAL LETTER O WITH STROKE"),
    (0x00DE, "th", "LATIN CAPITAL LETTER THORN"),
    (0x00DF, "ss", "LATIN SMALL LETTER SHARP S"),
    (0x00E6, "ae", "LATIN SMALL LETTER AE"),
    (0x00F0, "d", "LATIN SMALL LETTER ETH"),
    (0x00F8, "o", "LATIN SMALL LETTER O WITH STROKE"),
    (0x00FE, "th", "LATIN SMALL LETTER THORN"),
    (0x0110, "d", "LATIN CAPITAL LETTER D WITH STROKE"),
    (0x0111, "d", "LATIN SMALL LETTER D WITH STROKE"),
    (0x0126, "h", "LATIN CAPITAL LETTER H WITH STROKE"),
    (0x0127, "h", "LATIN SMALL LETTER H WITH STROKE"),
    (0x0131, "i", "LATIN SMALL LETTER DOTLESS I"),
    (0x0138, "q", "LATIN SMALL LETTER KRA"),  # CLDR: collates with q
    (0x013F, "l", "LATIN CAPITAL LETTER L WITH MIDDLE DOT"),  # compat has U+00B7
    (0x0140, "l", "LATIN SMALL LETTER L WITH MIDDLE DOT"),
    (0x0141, "l", "LATIN CAPITAL LETTER L WITH STROKE"),
    (0x0142, "l", "LATIN SMALL LETTER L WITH STROKE"),
    (0x0149, "n", "LATIN SMALL LETTER N PRECEDED BY APOSTROPHE"),  # CLDR 'n
    (0x014A, "n", "LATIN CAPITAL LETTER ENG"),
    (0x014B, "n", "LATIN SMALL LETTER ENG"),
    (0x0152, "oe", "LATIN CAPITAL LIGATURE OE"),
    (0x0153, "oe", "LATIN SMALL LIGATURE OE"),
    (0x0166, "t", "LATIN CAPITAL LETTER T WITH STROKE"),
    (0x0167, "t", "LATIN SMALL LETTER T WITH STROKE"),
    (0x0180, "b", "LATIN SMALL LETTER B WITH STROKE"),
    (0x0181, "b", "LATIN CAPITAL LETTER B WITH HOOK"),
    (0x0182, "b", "LATIN CAPITAL LETTER B WITH TOPBAR"),
    (0x0183, "b", "LATIN SMALL LETTER B WITH TOPBAR"),
    (0x0187, "c", "LATIN CAPITAL LETTER C WITH HOOK"),
    (0x0188, "c", "LATIN SMALL LETTER C WITH HOOK"),
    (0x0189, "d", "LATIN CAPITAL LETTER AFRICAN D"),
    (0x018A, "d", "LATIN CAPITAL LETTER D WITH HOOK"),
    (0x018B, "d", "LATIN CAPITAL LETTER D WITH TOPBAR"),
    (0x018C, "d", "LATIN SMALL LETTER D WITH TOPBAR"),
    # Not in CLDR: schwa is a letter of the Azerbaijani alphabet, whose ASCII spelling uses e.
    (0x018F, "e", "LATIN CAPITAL LETTER SCHWA"),
    (0x0190, "e", "LATIN CAPITAL LETTER OPEN E"),
    (0x0191, "f", "LATIN CAPITAL LETTER F WITH HOOK"),
    (0x0192, "f", "LATIN SMALL LETTER F WITH HOOK"),
    (0x0193, "g", "LATIN CAPITAL LETTER G WITH HOOK"),
    (0x0195, "hv", "LATIN SMALL LETTER HV"),
    (0x0196, "i", "LATIN CAPITAL LETTER IOTA"),
    (0x0197, "i", "LATIN CAPITAL LETTER I WITH STROKE"),
    (0x0198, "k", "LATIN CAPITAL LETTER K WITH HOOK"),
    (0x0199, "k", "LATIN SMALL LETTER K WITH HOOK"),
    (0x019A, "l", "LATIN SMALL LETTER L WITH BAR"),
    (0x019D, "n", "LATIN CAPITAL LETTER N WITH LEFT HOOK"),
    (0x019E, "n", "LATIN SMALL LETTER N WITH LONG RIGHT LEG"),
    (0x01A2, "oi", "LATIN CAPITAL LETTER OI"),
    (0x01A3, "oi", "LATIN SMALL LETTER OI"),
    (0x01A4, "p", "LATIN CAPITAL LETTER P WITH HOOK"),
    (0x01A5, "p", "LATIN SMALL LETTER P WITH HOOK"),
    (0x01AB, "t", "LATIN SMALL LETTER T WITH PALATAL HOOK"),
    (0x01AC, "t", "LATIN CAPITAL LETTER T WITH HOOK"),
    (0x01AD, "t", "LATIN SMALL LETTER T WITH HOOK"),
    (0x01AE, "t", "LATIN CAPITAL LETTER T WITH RETROFLEX HOOK"),
    (0x01B2, "v", "LATIN CAPITAL LETTER V WITH HOOK"),
    (0x01B3, "y", "LATIN CAPITAL LETTER Y WITH HOOK"),
    (0x01B4, "y", "LATIN SMALL LETTER Y WITH HOOK"),
    (0x01B5, "z", "LATIN CAPITAL LETTER Z WITH STROKE"),
    (0x01B6, "z", "LATIN SMALL LETTER Z WITH STROKE"),
    (0x01E4, "g", "LATIN CAPITAL LETTER G WITH STROKE"),
    (0x01E5, "g", "LATIN SMALL LETTER G WITH STROKE"),
    (0x0221, "d", "LATIN SMALL LETTER D WITH CURL"),
    (0x0224, "z", "LATIN CAPITAL LETTER Z WITH HOOK"),
    (0x0225, "z", "LATIN SMALL LETTER Z WITH HOOK"),
    (0x0234, "l", "LATIN SMALL LETTER L WITH CURL"),
    (0x0235, "n", "LATIN SMALL LETTER N WITH CURL"),
    (0x0236, "t", "LATIN SMALL LETTER T WITH CURL"),
    (0x0237, "j", "LATIN SMALL LETTER DOTLESS J"),
    (0x0238, "db", "LATIN SMALL LETTER DB DIGRAPH"),
    (0x0239, "qp", "LATIN SMALL LETTER QP DIGRAPH"),
    (0x023A, "a", "LATIN CAPITAL LETTER A WITH STROKE"),
    (0x023B, "c", "LATIN CAPITAL LETTER C WITH STROKE"),
    (0x023C, "c", "LATIN SMALL LETTER C WITH STROKE"),
    (0x023D, "l", "LATIN CAPITAL LETTER L WITH BAR"),
    (0x023E, "t", "LATIN CAPITAL LETTER T WITH DIAGONAL STROKE"),
    (0x023F, "s", "LATIN SMALL LETTER S WITH SWASH TAIL"),
    (0x0240, "z", "LATIN SMALL LETTER Z WITH SWASH TAIL"),
    (0x0243, "b", "LATIN CAPITAL LETTER B WITH STROKE"),
    (0x0244, "u", "LATIN CAPITAL LETTER U BAR"),
    (0x0246, "e", "LATIN CAPITAL LETTER E WITH STROKE"),
    (0x0247, "e", "LATIN SMALL LETTER E WITH STROKE"),
    (0x0248, "j", "LATIN CAPITAL LETTER J WITH STROKE"),
    (0x0249, "j", "LATIN SMALL LETTER J WITH STROKE"),
    (0x024C, "r", "LATIN CAPITAL LETTER R WITH STROKE"),
    (0x024D, "r", "LATIN SMALL LETTER R WITH STROKE"),
    (0x024E, "y", "LATIN CAPITAL LETTER Y WITH STROKE"),
    (0x024F, "y", "LATIN SMALL LETTER Y WITH STROKE"),
    (0x0253, "b", "LATIN SMALL LETTER B WITH HOOK"),
    (0x0255, "c", "LATIN SMALL LETTER C WITH CURL"),
    (0x0256, "d", "LATIN SMALL LETTER D WITH TAIL"),
    (0x0257, "d", "LATIN SMALL LETTER D WITH HOOK"),
    (0x0259, "e", "LATIN SMALL LETTER SCHWA"),  # not in CLDR: see U+018F
    (0x025B, "e", "LATIN SMALL LETTER OPEN E"),
    (0x025F, "j", "LATIN SMALL LETTER DOTLESS J WITH STROKE"),
    (0x0260, "g", "LATIN SMALL LETTER G WITH HOOK"),
    (0x0261, "g", "LATIN SMALL LETTER SCRIPT G"),
    (0x0262, "g", "LATIN LETTER SMALL CAPITAL G"),
    (0x0266, "h", "LATIN SMALL LETTER H WITH HOOK"),
    (0x0267, "h", "LATIN SMALL LETTER HENG WITH HOOK"),
    (0x0268, "i", "LATIN SMALL LETTER I WITH STROKE"),
    (0x026A, "i", "LATIN LETTER SMALL CAPITAL I"),
    (0x026B, "l", "LATIN SMALL LETTER L WITH MIDDLE TILDE"),
    (0x026C, "l", "LATIN SMALL LETTER L WITH BELT"),
    (0x026D, "l", "LATIN SMALL LETTER L WITH RETROFLEX HOOK"),
    (0x0271, "m", "LATIN SMALL LETTER M WITH HOOK"),
    (0x0272, "n", "LATIN SMALL LETTER N WITH LEFT HOOK"),
    (0x0273, "n", "LATIN SMALL LETTER N WITH RETROFLEX HOOK"),
    (0x0274, "n", "LATIN LETTER SMALL CAPITAL N"),
    (0x0276, "oe", "LATIN LETTER SMALL CAPITAL OE"),
    (0x027C, "r", "LATIN SMALL LETTER R WITH LONG LEG"),
    (0x027D, "r", "LATIN SMALL LETTER R WITH TAIL"),
    (0x027E, "r", "LATIN SMALL LETTER R WITH FISHHOOK"),
    (0x0280, "r", "LATIN LETTER SMALL CAPITAL R"),
    (0x0282, "s", "LATIN SMALL LETTER S WITH HOOK"),
    (0x0288, "t", "LATIN SMALL LETTER T WITH RETROFLEX HOOK"),
    (0x0289, "u", "LATIN SMALL LETTER U BAR"),
    (0x028B, "v", "LATIN SMALL LETTER V WITH HOOK"),
    (0x028F, "y", "LATIN LETTER SMALL CAPITAL Y"),
    (0x0290, "z", "LATIN SMALL LETTER Z WITH RETROFLEX HOOK"),
    (0x0291, "z", "LATIN SMALL LETTER Z WITH CURL"),
    (0x0299, "b", "LATIN LETTER SMALL CAPITAL B"),
    (0x029B, "g", "LATIN LETTER SMALL CAPITAL G WITH HOOK"),
    (0x029C, "h", "LATIN LETTER SMALL CAPITAL H"),
    (0x029D, "j", "LATIN SMALL LETTER J WITH CROSSED-TAIL"),
    (0x029F, "l", "LATIN LETTER SMALL CAPITAL L"),
    (0x02A0, "q", "LATIN SMALL LETTER Q WITH HOOK"),
    (0x02A3, "dz", "LATIN SMALL LETTER DZ DIGRAPH"),
    (0x02A5, "dz", "LATIN SMALL LETTER DZ DIGRAPH WITH CURL"),
    (0x02A6, "ts", "LATIN SMALL LETTER TS DIGRAPH"),
    (0x02AA, "ls", "LATIN SMALL LETTER LS DIGRAPH"),
    (0x02AB, "lz", "LATIN SMALL LETTER LZ DIGRAPH"),
    (0x1D00, "a", "LATIN LETTER SMALL CAPITAL A"),
    (0x1D01, "ae", "LATIN LETTER SMALL CAPITAL AE"),
    (0x1D03, "b", "LATIN LETTER SMALL CAPITAL BARRED B"),
    (0x1D04, "c", "LATIN LETTER SMALL CAPITAL C"),
    (0x1D05, "d", "LATIN LETTER SMALL CAPITAL D"),
    (0x1D06, "d", "LATIN LETTER SMALL CAPITAL ETH"),
    (0x1D07, "e", "LATIN LETTER SMALL CAPITAL E"),
    (0x1D0A, "j", "LATIN LETTER SMALL CAPITAL J"),
    (0x1D0B, "k", "LATIN LETTER SMALL CAPITAL K"),
    (0x1D0C, "l", "LATIN LETTER SMALL CAPITAL L WITH STROKE"),
    (0x1D0D, "m", "LATIN LETTER SMALL CAPITAL M"),
    (0x1D0F, "o", "LATIN LETTER SMALL CAPITAL O"),
    (0x1D18, "p", "LATIN LETTER SMALL CAPITAL P"),
    (0x1D1B, "t", "LATIN LETTER SMALL CAPITAL T"),
    (0x1D1C, "u", "LATIN LETTER SMALL CAPITAL U"),
    (0x1D20, "v", "LATIN LETTER SMALL CAPITAL V"),
    (0x1D21, "w", "LATIN LETTER SMALL CAPITAL W"),
    (0x1D22, "z", "LATIN LETTER SMALL CAPITAL Z"),
    (0x1D6B, "ue", "LATIN SMALL LETTER UE"),
    (0x1D6C, "b", "LATIN SMALL LETTER B WITH MIDDLE TILDE"),
    (0x1D6D, "d", "LATIN SMALL LETTER D WITH MIDDLE TILDE"),
    (0x1D6E, "f", "LATIN SMALL LETTER F WITH MIDDLE TILDE"),
    (0x1D6F, "m", "LATIN SMALL LETTER M WITH MIDDLE TILDE"),
    (0x1D70, "n", "LATIN SMALL LETTER N WITH MIDDLE TILDE"),
    (0x1D71, "p", "LATIN SMALL LETTER P WITH MIDDLE TILDE"),
    (0x1D72, "r", "LATIN SMALL LETTER R WITH MIDDLE TILDE"),
    (0x1D73, "r", "LATIN SMALL LETTER R WITH FISHHOOK AND MIDDLE TILDE"),
    (0x1D74, "s", "LATIN SMALL LETTER S WITH MIDDLE TILDE"),
    (0x1D75, "t", "LATIN SMALL LETTER T WITH MIDDLE TILDE"),
    (0x1D76, "z", "LATIN SMALL LETTER Z WITH MIDDLE TILDE"),
    (0x1D7A, "th", "LATIN SMALL LETTER TH WITH STRIKETHROUGH"),
    (0x1D7B, "i", "LATIN SMALL CAPITAL LETTER I WITH STROKE"),
    (0x1D7D, "p", "LATIN SMALL LETTER P WITH STROKE"),
    (0x1D7E, "u", "LATIN SMALL CAPITAL LETTER U WITH STROKE"),
    (0x1D80, "b", "LATIN SMALL LETTER B WITH PALATAL HOOK"),
    (0x1D81, "d", "LATIN SMALL LETTER D WITH PALATAL HOOK"),
    (0x1D82, "f", "LATIN SMALL LETTER F WITH PALATAL HOOK"),
    (0x1D83, "g", "LATIN SMALL LETTER G WITH PALATAL HOOK"),
    (0x1D84, "k", "LATIN SMALL LETTER K WITH PALATAL HOOK"),
    (0x1D85, "l", "LATIN SMALL LETTER L WITH PALATAL HOOK"),
    (0x1D86, "m", "LATIN SMALL LETTER M WITH PALATAL HOOK"),
    (0x1D87, "n", "LATIN SMALL LETTER N WITH PALATAL HOOK"),
    (0x1D88, "p", "LATIN SMALL LETTER P WITH PALATAL HOOK"),
    (0x1D89, "r", "LATIN SMALL LETTER R WITH PALATAL HOOK"),
    (0x1D8A, "s", "LATIN SMALL LETTER S WITH PALATAL HOOK"),
    (0x1D8C, "v", "LATIN SMALL LETTER V WITH PALATAL HOOK"),
    (0x1D8D, "x", "LATIN SMALL LETTER X WITH PALATAL HOOK"),
    (0x1D8E, "z", "LATIN SMALL LETTER Z WITH PALATAL HOOK"),
    (0x1D8F, "a", "LATIN SMALL LETTER A WITH RETROFLEX HOOK"),
    (0x1D91, "d", "LATIN SMALL LETTER D WITH HOOK AND TAIL"),
    (0x1D92, "e", "LATIN SMALL LETTER E WITH RETROFLEX HOOK"),
    (0x1D93, "e", "LATIN SMALL LETTER OPEN E WITH RETROFLEX HOOK"),
    (0x1D96, "i", "LATIN SMALL LETTER I WITH RETROFLEX HOOK"),
    (0x1D99, "u", "LATIN SMALL LETTER U WITH RETROFLEX HOOK"),
    (0x1E9A, "a", "LATIN SMALL LETTER A WITH RIGHT HALF RING"),  # compat has U+02BE
    (0x1E9C, "s", "LATIN SMALL LETTER LONG S WITH DIAGONAL STROKE"),
    (0x1E9D, "s", "LATIN SMALL LETTER LONG S WITH HIGH STROKE"),
    (0x1E9E, "ss", "LATIN CAPITAL LETTER SHARP S"),
    (0x1EFA, "ll", "LATIN CAPITAL LETTER MIDDLE-WELSH LL"),
    (0x1EFB, "ll", "LATIN SMALL LETTER MIDDLE-WELSH LL"),
    (0x1EFC, "v", "LATIN CAPITAL LETTER MIDDLE-WELSH V"),
    (0x1EFD, "v", "LATIN SMALL LETTER MIDDLE-WELSH V"),
    (0x1EFE, "y", "LATIN CAPITAL LETTER Y WITH LOOP"),
    (0x1EFF, "y", "LATIN SMALL LETTER Y WITH LOOP"),
]

MAX_REPL = 3  # the C table stores char repl[4]


def fail(msg):
    sys.stderr.write("gen-latin-fold: %s\n" % msg)
    sys.exit(1)


def load(path):
    """Return {cp: (name, category, tag, [decomposition cps], upper, lower)}."""
    chars = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            if len(fields) != 15:
                fail("unexpected line in %s: %r" % (path, line))
            cp = int(fields[0], 16)
            tag = ""
            parts = fields[5].split()
            if parts and parts[0].startswith("<"):
                tag, parts = parts[0], parts[1:]
            decomp = [int(p, 16) for p in parts]
            upper = int(fields[12], 16) if fields[12] else None
            lower = int(fields[13], 16) if fields[13] else None
            chars[cp] = (fields[1], fields[2], tag, decomp, upper, lower)
    return chars


def unicode_version(path):
    """The UCD version from the ReadMe.txt beside UnicodeData.txt, for the header comment."""
    try:
        with open(os.path.join(os.path.dirname(path), "ReadMe.txt"), encoding="utf-8") as f:
            m = re.search(r"Version (\d+\.\d+\.\d+) of the Unicode Standard", f.read())
    except OSError:
        m = None
    return m.group(1) if m else "(version unknown)"


def in_blocks(cp):
    return any(lo <= cp <= hi for lo, hi, _ in BLOCKS)


def expand(chars, explicit, cp):
    """Recursively decompose cp into a list of code points and replacement strings."""
    if cp in explicit:
        return [explicit[cp]]
    info = chars.get(cp)
    if info is None or not info[3] or info[2] not in FOLLOWED_TAGS:
        return [cp]
    out = []
    for part in info[3]:
        out.extend(expand(chars, explicit, part))
    return out


def fold(chars, explicit, cp):
    """The lower-case ASCII replacement for cp, or None if it has none."""
    text = []
    for piece in expand(chars, explicit, cp):
        if isinstance(piece, str):
            text.append(piece)
            continue
        if piece < 0x80 and chr(piece).isalnum():
            text.append(chr(piece).lower())
            continue
        info = chars.get(piece)
        if info is not None and info[1] == "Mn":
            continue  # an accent: dropped
        return None
    s = "".join(text)
    return s if s else None


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_UCD
    if len(sys.argv) > 2:
        fail("usage: gen-latin-fold.py [UnicodeData.txt]")
    try:
        chars = load(path)
    except OSError as e:
        fail("%s (install the unicode-data package or pass UnicodeData.txt)" % e)

    explicit = {}
    for cp, repl, name in EXPLICIT:
        info = chars.get(cp)
        if info is None or info[0] != name:
            fail("U+%04X is %r in %s, not %r" % (cp, info and info[0], path, name))
        if cp in explicit:
            fail("U+%04X listed twice" % cp)
        explicit[cp] = repl
    # An explicit entry must be needed: if the data already folds the letter, trust the data.
    for cp in explicit:
        if fold(chars, {}, cp) is not None:
            fail("U+%04X already folds to %r from its decomposition" % (cp, fold(chars, {}, cp)))

    table = {}
    for cp, (name, cat, _, _, _, _) in chars.items():
        if not in_blocks(cp) or not (cat.startswith("L") or cat == "Nd"):
            continue
        repl = fold(chars, explicit, cp)
        if repl is not None:
            table[cp] = repl

    # Case partners share a replacement; iterate because a partner may itself have one.
    changed = True
    while changed:
        changed = False
        for cp in sorted(table):
            for partner in chars[cp][4:6]:
                if partner is not None and partner not in table and in_blocks(partner):
                    table[partner] = table[cp]
                    changed = True

    for cp, repl in table.items():
        if not (1 <= len(repl) <= MAX_REPL) or not all(
            c.isascii() and (c.islower() or c.isdigit()) for c in repl
        ):
            fail("U+%04X folds to %r, not 1-%d of [a-z0-9]" % (cp, repl, MAX_REPL))

    w = sys.stdout.write
    w("/* GENERATED by scripts/gen-latin-fold.py from UnicodeData.txt (Unicode %s).\n"
      % unicode_version(path))
    w(" * Do not edit.\n")
    w(" * Regenerate: python3 scripts/gen-latin-fold.py > src/core/latin_fold.h\n")
    w(" *\n")
    w(" * Latin letters (and digits) that fold to lower-case ASCII in a slug, sorted by\n")
    w(" * code point for binary search. Included only by src/core/slug.c. */\n")
    w("#ifndef RF_LATIN_FOLD_H\n")
    w("#define RF_LATIN_FOLD_H\n")
    w("\n")
    w("#include <stdint.h>\n")
    w("\n")
    w("struct latin_fold {\n")
    w("    uint32_t cp;\n")
    w("    char repl[%d]; /* NUL-terminated */\n" % (MAX_REPL + 1))
    w("};\n")
    w("\n")
    w("/* clang-format off */\n")
    w("static const struct latin_fold latin_fold[%d] = {\n" % len(table))
    for cp in sorted(table):
        w('    {0x%04X, "%s"}, /* %s */\n' % (cp, table[cp], chars[cp][0]))
    w("};\n")
    w("/* clang-format on */\n")
    w("\n")
    w("#endif\n")


if __name__ == "__main__":
    main()
