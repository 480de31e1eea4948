#!/usr/bin/env python3
"""Generates the wrappers' restatements of include/circuit.h from the header.

    python3 ci/gen_bindings.py [--header include/circuit.h] [--out-dir DIR]

writes
  bindings/python/circuit/_cdefs.py  constants (#defines and enum members,
      without the CIRCUIT_ prefix), state and reason names, the structs
      (ctypes.Structure), the callback types (CFUNCTYPE) and one
      (name, restype, argtypes) row per function;
  bindings/go/constants_gen.go       the #defines and enum members as
      untyped Go constants (cStateClosed, cWordFastMask, ...) and the state
      and reason names.

With --out-dir both files go to DIR (flat) instead: ci/header.sh generates
there from a fresh header and diffs against the committed files (`make
header` writes them). Plain Python, no dependencies: cbindgen's output has a
regular shape (one declaration per `;`, comments in /* */ and //), and
anything this parser does not understand is an error, not a guess.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY_OUT = os.path.join("bindings", "python", "circuit", "_cdefs.py")
GO_OUT = os.path.join("bindings", "go", "constants_gen.go")

# C values the header spells as <stdint.h> macros.
_MACROS = {"UINT64_MAX": (1 << 64) - 1, "UINT32_MAX": (1 << 32) - 1}

_SCALARS = {
    "uint8_t": "c_uint8",
    "uint32_t": "c_uint32",
    "uint64_t": "c_uint64",
    "int32_t": "c_int32",
    "int64_t": "c_int64",
    "double": "c_double",
    "size_t": "c_size_t",
    "uintptr_t": "c_size_t",
    "bool": "c_bool",
}

# The line that ends the library's declarations (cbindgen's include guard).
GUARD_END = "#endif  /* CIRCUIT_H */"


class Header:
    """What the generators need from the header."""

    def __init__(self, text: str) -> None:
        # The library's declarations end with the include guard; after it
        # come the inline helpers for C callers (CIRCUIT_FAST_H), which
        # declare no symbol of the library and which the wrappers do not use.
        if GUARD_END not in text:
            raise SystemExit(f"gen_bindings: the header has no {GUARD_END!r} line")
        text = text.split(GUARD_END)[0]
        self.defines: List[Tuple[str, "int | float"]] = []
        self.enums: List[Tuple[str, List[Tuple[str, int]]]] = []
        self.structs: List[Tuple[str, List[Tuple[str, str, str]]]] = []
        self.callbacks: List[Tuple[str, str, List[str]]] = []
        self.functions: List[Tuple[str, str, List[str]]] = []
        self.u32_types = set(re.findall(r"typedef\s+uint32_t\s+(\w+)\s*;", text))
        self.handles = set(re.findall(r"typedef\s+struct\s+(\w+)\s+\1\s*;", text))
        for name, value in re.findall(r"^#define\s+(CIRCUIT_\w+)\s+(\S+)\s*$", text, flags=re.M):
            self.defines.append((name, _value(value, name)))
        body = _strip(text)
        for name, members in re.findall(r"\benum\s+(circuit_\w+)\s*\{(.*?)\}", body, flags=re.S):
            out = []
            for m in members.split(","):
                m = m.strip()
                if not m:
                    continue
                mm = re.fullmatch(r"(CIRCUIT_\w+)\s*=\s*(\S+)", m)
                if not mm:
                    raise SystemExit(f"gen_bindings: enum {name}: cannot read {m!r}")
                v = _value(mm.group(2), mm.group(1))
                if not isinstance(v, int):
                    raise SystemExit(f"gen_bindings: enum member {mm.group(1)} is not an integer")
                out.append((mm.group(1), v))
            self.enums.append((name, out))
        for name, fields in re.findall(
            r"typedef\s+struct\s+(circuit_\w+)\s*\{(.*?)\}\s*\1\s*;", body, flags=re.S
        ):
            out_f = []
            for decl in fields.split(";"):
                decl = decl.strip()
                if not decl:
                    continue
                fm = re.fullmatch(r"(.*?)(\w+)\s*(?:\[(\w+)\])?", decl, flags=re.S)
                if not fm:
                    raise SystemExit(f"gen_bindings: struct {name}: cannot read {decl!r}")
                out_f.append((_norm(fm.group(1)), fm.group(2), fm.group(3) or ""))
            self.structs.append((name, out_f))
        for ret, name, params in re.findall(
            r"typedef\s+([\w\s\*]+?)\(\s*\*\s*(\w+)\s*\)\s*\((.*?)\)\s*;", body, flags=re.S
        ):
            self.callbacks.append((name, _norm(ret), _params(params)))
        # Functions: what is left once typedefs, struct and enum bodies go.
        rest = re.sub(r"typedef[^;]*?\{.*?\}[^;]*;", " ", body, flags=re.S)
        rest = re.sub(r"\benum\s+\w+\s*\{.*?\}\s*;", " ", rest, flags=re.S)
        rest = re.sub(r'extern\s+"C"\s*\{', " ", rest)
        for stmt in rest.split(";"):
            stmt = stmt.replace("}", " ").strip()
            if not stmt or stmt.startswith("typedef"):
                continue
            m = re.fullmatch(r"(.*?)\b(circuit_\w+)\s*\((.*)\)", stmt, flags=re.S)
            if not m:
                raise SystemExit(f"gen_bindings: cannot read the declaration {stmt!r}")
            self.functions.append((m.group(2), _norm(m.group(1)), _params(m.group(3))))
        if not self.functions or not self.defines or not self.enums:
            raise SystemExit("gen_bindings: the header has no functions, defines or enums?")

    def enum(self, name: str) -> List[Tuple[str, int]]:
        for n, members in self.enums:
            if n == name:
                return members
        raise SystemExit(f"gen_bindings: no enum {name}")

    def names(self, enum: str, prefix: str) -> List[str]:
        """Lower-case member names of a dense enum, indexed by value."""
        members = sorted(self.enum(enum), key=lambda m: m[1])
        if [v for _, v in members] != list(range(len(members))):
            raise SystemExit(f"gen_bindings: {enum} is not dense from 0")
        return [n[len(prefix) :].lower() for n, _ in members]

    def ctype(self, t: str, *, field: bool = False) -> str:
        """The ctypes spelling of normalised C type ``t`` (see ``_norm``)."""
        const = t.startswith("const ")
        base = t[len("const ") :] if const else t
        if base == "void":
            return "None"
        if base in _SCALARS:
            return _SCALARS[base]
        if base in self.u32_types:
            return "c_uint32"
        if base in (n for n, _, _ in self.callbacks):
            return base
        if base in (n for n, _ in self.structs):
            return base  # by value
        if base.endswith("**"):
            return "POINTER(c_void_p)"
        if base.endswith("*"):
            inner = base[:-1]
            if field:
                return "c_void_p"  # pointers in structs are addresses to the binding
            if inner == "char":
                # `const char *` is a NUL-terminated or (ptr, len) input;
                # `char *` is a buffer the library writes.
                return "c_char_p" if const else "c_void_p"
            if inner in ("void", "uint8_t"):
                return "c_void_p"
            if inner in (n for n, _ in self.structs):
                return f"POINTER({inner})"
            if inner in self.handles:
                return "c_void_p"
            if inner in _SCALARS:
                return f"POINTER({_SCALARS[inner]})"
            if inner in self.u32_types:
                return "POINTER(c_uint32)"
        raise SystemExit(f"gen_bindings: no ctypes type for the C type {t!r}")


def _value(v: str, name: str) -> "int | float":
    if v in _MACROS:
        return _MACROS[v]
    try:
        return int(v.rstrip("uUlL"), 0)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        raise SystemExit(f"gen_bindings: {name} = {v!r} is not a number") from None


def _strip(text: str) -> str:
    # C++-only parts (`: uint32_t` after an enum name, `extern "C" {`).
    text = re.sub(r"^#ifdef __cplusplus\n.*?^#endif[^\n]*", " ", text, flags=re.S | re.M)
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^\s*#[^\n]*(\\\n[^\n]*)*", " ", text, flags=re.M)
    return text


def _norm(t: str) -> str:
    """`const struct circuit_event *` -> `const circuit_event*`: one leading
    `const` kept (it tells input strings from output buffers), `struct` and
    `enum` dropped, no spaces around `*`."""
    t = re.sub(r"\b(struct|enum)\b", " ", t)
    const = re.match(r"\s*const\b", t) is not None
    t = re.sub(r"\bconst\b", " ", t)
    t = re.sub(r"\s+", " ", t).strip().replace(" *", "*")
    return ("const " if const else "") + t


def _params(params: str) -> List[str]:
    params = params.strip()
    if params in ("", "void"):
        return []
    out = []
    for p in params.split(","):
        pm = re.fullmatch(r"(.*?)(\w+)", p.strip(), flags=re.S)
        if not pm:
            raise SystemExit(f"gen_bindings: cannot read the parameter {p!r}")
        out.append(_norm(pm.group(1)))
    return out


def _py_int(v: "int | float") -> str:
    if isinstance(v, float):
        return repr(v)
    if v > 0xFFFF and v & (v + 1) == 0:
        return f"0x{v:_X}"  # an all-ones mask or maximum
    return f"{v:_}"


def python(h: Header) -> str:
    out = [
        '"""The declarations of include/circuit.h for ctypes.',
        "",
        "Generated by ci/gen_bindings.py from include/circuit.h; do not edit",
        "(`make header` regenerates it; ci/header.sh fails on drift).",
        '"""',
        "",
        "# fmt: off",
        "from __future__ import annotations",
        "",
        "import ctypes",
        "from ctypes import (",
    ]
    names = sorted(
        {"POINTER", "Structure", "c_char_p", "c_void_p"} | set(_SCALARS.values()),
        key=lambda s: (s[0].islower(), s),
    )
    out += [f"    {n}," for n in names]
    out += [")", "from typing import Any, Tuple", ""]
    out += ["# ---- #define constants ----"]
    for name, v in h.defines:
        if name == "CIRCUIT_H":
            continue
        out.append(f"{name[len('CIRCUIT_'):]} = {_py_int(v)}")
    for enum, members in h.enums:
        out += ["", f"# ---- enum {enum} ----"]
        for name, v in members:
            out.append(f"{name[len('CIRCUIT_'):]} = {_py_int(v)}")
    out += ["", "#: Lower-case state names, indexed by value (as `circuit_state_str` prints them)."]
    out.append(f"STATE_NAMES: Tuple[str, ...] = {tuple(h.names('circuit_state', 'CIRCUIT_STATE_'))!r}")
    out.append("#: Lower-case reason names, indexed by value (as `circuit_reason_str` prints them).")
    out.append(
        f"REASON_NAMES: Tuple[str, ...] = {tuple(h.names('circuit_reason', 'CIRCUIT_REASON_'))!r}"
    )
    for name, fields in h.structs:
        out += ["", "", f"class {name}(Structure):", "    _fields_ = ["]
        for t, fname, n in fields:
            ct = h.ctype(t, field=True)
            if n:
                dim = n[len("CIRCUIT_") :] if n.startswith("CIRCUIT_") else n
                ct = f"{ct} * {dim}"
            out.append(f'        ("{fname}", {ct}),')
        out.append("    ]")
    out.append("")
    for name, ret, params in h.callbacks:
        args = ", ".join([h.ctype(ret)] + [h.ctype(p) for p in params])
        out += ["", f"{name} = ctypes.CFUNCTYPE({args})"]
    out += [
        "",
        "#: (name, restype, argtypes) of every function, in header order.",
        "PROTOTYPES: Tuple[Tuple[str, Any, Tuple[Any, ...]], ...] = (",
    ]
    for name, ret, params in h.functions:
        args = ", ".join(h.ctype(p) for p in params) + ("," if len(params) == 1 else "")
        out.append(f'    ("{name}", {h.ctype(ret)}, ({args})),')
    out += [")", ""]
    return "\n".join(out)


def _camel(name: str) -> str:
    return "c" + "".join(w.capitalize() for w in name[len("CIRCUIT_") :].split("_"))


def go(h: Header) -> str:
    out = [
        "// Code generated by ci/gen_bindings.py from include/circuit.h. DO NOT EDIT.",
        "// (`make header` regenerates it; ci/header.sh fails on drift.)",
        "",
        "package circuit",
        "",
        "// The header's #define constants and enum members, as untyped constants",
        "// usable in files that do not import \"C\" (cgo.go checks a few against",
        "// C.CIRCUIT_* at compile time).",
        "const (",
    ]
    rows: List[Tuple[str, "int | float"]] = [(n, v) for n, v in h.defines if n != "CIRCUIT_H"]
    for _, members in h.enums:
        rows += members
    width = max(len(_camel(n)) for n, _ in rows)
    for n, v in rows:
        out.append(f"\t{_camel(n).ljust(width)} = {v}")
    out += [")", ""]
    for var, enum, prefix in (
        ("cStateNames", "circuit_state", "CIRCUIT_STATE_"),
        ("cReasonNames", "circuit_reason", "CIRCUIT_REASON_"),
    ):
        names = ", ".join(f'"{n}"' for n in h.names(enum, prefix))
        out += [f"// {var}: lower-case names of {enum}, indexed by value.", f"var {var} = [...]string{{{names}}}", ""]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--header", default=os.path.join(ROOT, "include", "circuit.h"))
    ap.add_argument("--out-dir", help="write both files flat into this directory")
    a = ap.parse_args()
    with open(a.header, encoding="utf-8") as f:
        h = Header(f.read())
    for rel, text in ((PY_OUT, python(h)), (GO_OUT, go(h))):
        path = os.path.join(a.out_dir, os.path.basename(rel)) if a.out_dir else os.path.join(ROOT, rel)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
