#!/usr/bin/env python3
"""Fails when a wrapper spells out, as a number, a value include/circuit.h names.

    python3 ci/header_literals.py [--header include/circuit.h]

Checked files: bindings/python/circuit/*.py and bindings/go/*.go, except the
generated ones (_cdefs.py, constants_gen.go) and Go tests. Only code is
read: comments and strings are skipped (Python through `tokenize`, Go by a
small lexer), and only integer literals count (1e9, 0.5 never do).

What counts as the header's, precisely (so that 0, 1, 1000, 1e9 and the
like never trip it):
  - the value of every `#define CIRCUIT_*` that is 2 or more (masks, shifts,
    sizes, sentinels: CIRCUIT_WORD_FAST_MASK 31, CIRCUIT_STATE_COUNT 7,
    CIRCUIT_RETRY_AFTER_UNKNOWN 2^64-1, ...), in any spelling (31, 0x1F,
    0b11111, 1_024), anywhere in code; except #defines that form an
    enumeration (two or more sharing a prefix, such as CIRCUIT_SYNC_* and
    CIRCUIT_VERSION_*: small ordinals, like enum members) and defaults
    (CIRCUIT_*_DEFAULT_*: 100 samples or 1 s in nanoseconds are also a
    percentage or a unit elsewhere; the wrappers use the generated
    constants for them, which review, not this check, keeps so);
  - in a bitwise expression (an operand of &, |, ^, &^ or their assignment
    forms) also the flag #defines of value 1 (CIRCUIT_PERMIT_PROBE,
    CIRCUIT_FEATURE_*): `flags & 1` is the probe bit spelled as a number.
Enum members (0 to a few dozen) are not looked for as bare numbers: they
would match every small count; the wrappers take them from the generated
files, which the drift check keeps equal to the header.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import re
import sys
import tokenize
from typing import Dict, Iterator, List, Set, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_bindings import Header  # noqa: E402

GENERATED = {"_cdefs.py", "constants_gen.go"}
BITWISE = {"&", "|", "^", "&^", "&=", "|=", "^=", "&^="}


def header_values(h: Header) -> Tuple[Dict[int, str], Dict[int, str]]:
    """(anywhere, in bitwise expressions only): value -> #define name."""
    prefixes: Dict[str, int] = {}
    for name, _ in h.defines:
        prefixes[name.rsplit("_", 1)[0]] = prefixes.get(name.rsplit("_", 1)[0], 0) + 1
    anywhere: Dict[int, str] = {}
    bitwise: Dict[int, str] = {}
    for name, v in h.defines:
        if not isinstance(v, int):
            continue  # floats: only integer literals are looked for
        if prefixes[name.rsplit("_", 1)[0]] >= 2:
            continue  # an enumeration of #defines
        if "_DEFAULT_" in name:
            continue  # a default (100 samples, 1 s): plain numbers elsewhere too
        if v >= 2:
            anywhere.setdefault(v, name)
        elif v == 1 and re.match(r"CIRCUIT_(PERMIT|FEATURE)_", name):
            bitwise.setdefault(v, name)
    return anywhere, bitwise


def _int(text: str) -> "int | None":
    t = text.replace("_", "").rstrip("uUlL")
    if re.fullmatch(r"0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO]?[0-7]+|[1-9]\d*|0", t):
        if re.fullmatch(r"0[0-7]+", t):  # Go's leading-zero octal
            return int(t, 8)
        return int(t, 0)
    return None


def python_tokens(text: str) -> Iterator[Tuple[int, str, str, str]]:
    """(line, literal, previous operator, next operator) for each integer."""
    toks = [
        t
        for t in tokenize.generate_tokens(io.StringIO(text).readline)
        if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    ]
    for i, t in enumerate(toks):
        if t.type == tokenize.NUMBER:
            prev = toks[i - 1].string if i and toks[i - 1].type == tokenize.OP else ""
            nxt = toks[i + 1].string if i + 1 < len(toks) and toks[i + 1].type == tokenize.OP else ""
            yield t.start[0], t.string, prev, nxt


_GO_TOKEN = re.compile(
    r"""(?P<comment>//[^\n]*|/\*.*?\*/)
      | (?P<string>"(?:\\.|[^"\\\n])*"|`[^`]*`|'(?:\\.|[^'\\\n])+')
      | (?P<number>(?:0[xX][0-9a-fA-F_]+|\d[\d_]*)(?:\.\d*)?(?:[eEpP][+-]?\d+)?i?)
      | (?P<ident>[A-Za-z_]\w*)
      | (?P<op>&\^=|&\^|<<=|>>=|&&|\|\||[-+*/%&|^<>=!]=|<<|>>|[-+*/%&|^<>=!~.,;:()\[\]{}])
      | (?P<space>\s+)""",
    re.S | re.X,
)


def go_tokens(text: str) -> Iterator[Tuple[int, str, str, str]]:
    toks: List[Tuple[str, str, int]] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _GO_TOKEN.match(text, pos)
        if not m:
            raise SystemExit(f"header_literals: cannot lex Go at line {line}: {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        if kind not in ("comment", "space"):
            toks.append((kind, m.group(), line))
        line += m.group().count("\n")
        pos = m.end()
    for i, (kind, s, ln) in enumerate(toks):
        if kind == "number":
            prev = toks[i - 1][1] if i and toks[i - 1][0] == "op" else ""
            nxt = toks[i + 1][1] if i + 1 < len(toks) and toks[i + 1][0] == "op" else ""
            yield ln, s, prev, nxt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--header", default=os.path.join(ROOT, "include", "circuit.h"))
    a = ap.parse_args()
    with open(a.header, encoding="utf-8") as f:
        anywhere, bitwise = header_values(Header(f.read()))
    files = sorted(glob.glob(os.path.join(ROOT, "bindings", "python", "circuit", "*.py")))
    files += sorted(
        p for p in glob.glob(os.path.join(ROOT, "bindings", "go", "*.go")) if not p.endswith("_test.go")
    )
    found: List[str] = []
    checked: Set[str] = set()
    for path in files:
        if os.path.basename(path) in GENERATED:
            continue
        checked.add(path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        tokens = python_tokens(text) if path.endswith(".py") else go_tokens(text)
        for line, lit, prev, nxt in tokens:
            v = _int(lit)
            if v is None:
                continue
            name = anywhere.get(v)
            if name is None and (prev in BITWISE or nxt in BITWISE):
                name = bitwise.get(v)
            if name is not None:
                rel = os.path.relpath(path, ROOT)
                found.append(f"{rel}:{line}: {lit} is {name}; use the generated constant")
    for f in found:
        print(f, file=sys.stderr)
    if found:
        print(
            f"header_literals: {len(found)} literal(s) restate include/circuit.h "
            "(see ci/header_literals.py for what is checked)",
            file=sys.stderr,
        )
        return 1
    print(
        f"header_literals: {len(checked)} wrapper files name no header value as a number "
        f"({len(anywhere)} values anywhere, {len(bitwise)} flag(s) in bitwise expressions)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
