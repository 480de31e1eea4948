"""The ctypes declarations against include/circuit.h, and library loading.

The header is parsed here (comments and preprocessor lines stripped, then one
declaration per `;`), so a function added to the ABI without a declaration in
`circuit/_ffi.py` (or declared with other types) fails this file.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import circuit
from circuit import _ffi

# ---- header parsing ------------------------------------------------------------


def _strip(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^\s*#[^\n]*(\\\n[^\n]*)*", " ", text, flags=re.M)
    text = re.sub(r'extern\s+"C"\s*\{', " ", text)
    return text


def _norm(t: str) -> str:
    t = re.sub(r"\b(const|struct|enum)\b", " ", t)
    t = re.sub(r"\s+", "", t)
    return t


def parse_functions(header: str):
    """{name: (return type, [param types])}, types normalised (no const/struct)."""
    body = _strip(header)
    out = {}
    for stmt in body.split(";"):
        stmt = stmt.strip()
        if not stmt or stmt.startswith("typedef") or "{" in stmt or "}" in stmt:
            # struct bodies end with `}`; the split leaves their tails here
            stmt = stmt.split("}")[-1].strip()
            if not stmt or stmt.startswith("typedef"):
                continue
        m = re.match(r"^(.*?)\b(circuit_\w+)\s*\((.*)\)\s*$", stmt, flags=re.S)
        if not m or "(*" in stmt:
            continue
        ret, name, params = m.groups()
        if params.strip() in ("", "void"):
            plist = []
        else:
            plist = []
            for p in params.split(","):
                p = p.strip()
                pm = re.match(r"^(.*?)(\w+)(\s*\[[^\]]*\])?$", p, flags=re.S)
                assert pm, p
                plist.append(_norm(pm.group(1)))
        out[name] = (_norm(ret), plist)
    return out


def parse_u32_typedefs(header: str):
    return set(re.findall(r"typedef\s+uint32_t\s+(\w+)\s*;", header))


def parse_handles(header: str):
    return set(re.findall(r"typedef\s+struct\s+(\w+)\s+\1\s*;", header))


def parse_callbacks(header: str):
    return set(re.findall(r"typedef\s+[\w\s\*]+\(\s*\*\s*(\w+)\s*\)", header))


def parse_struct(header: str, name: str):
    m = re.search(r"typedef struct %s \{(.*?)\} %s;" % (name, name), _strip(header), flags=re.S)
    assert m, name
    fields = []
    for decl in m.group(1).split(";"):
        decl = decl.strip()
        if not decl:
            continue
        fm = re.match(r"^(.*?)(\w+)\s*(\[(\w+)\])?$", decl, flags=re.S)
        assert fm, decl
        fields.append((_norm(fm.group(1)), fm.group(2), fm.group(4)))
    return fields


def parse_defines(header: str):
    out = {}
    for name, value in re.findall(r"^#define\s+(CIRCUIT_\w+)\s+(\S+)\s*$", header, flags=re.M):
        out[name] = value
    for name, value in re.findall(r"^\s*(CIRCUIT_\w+)\s*=\s*(\w+),", header, flags=re.M):
        out[name] = value
    return out


_SCALARS = {
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "int32_t": ctypes.c_int32,
    "int64_t": ctypes.c_int64,
    "double": ctypes.c_double,
    "size_t": ctypes.c_size_t,
    "bool": ctypes.c_bool,
}


def _struct_classes():
    return {
        obj.__name__: obj
        for obj in vars(_ffi).values()
        if isinstance(obj, type)
        and issubclass(obj, ctypes.Structure)
        and obj.__name__.startswith("circuit_")
    }


def _matches(ctype: str, declared, header: str) -> bool:
    """Whether the ctypes type `declared` is right for C type `ctype`."""
    u32 = parse_u32_typedefs(header)
    handles = parse_handles(header)
    callbacks = parse_callbacks(header)
    structs = _struct_classes()
    if ctype == "void":
        return declared is None
    if ctype in _SCALARS:
        return declared is _SCALARS[ctype]
    if ctype in u32:
        return declared is ctypes.c_uint32
    if ctype in callbacks:
        return isinstance(declared, type) and issubclass(declared, ctypes._CFuncPtr) or declared is ctypes.c_void_p
    if ctype in structs:  # by value
        return declared is structs[ctype]
    if ctype.endswith("**"):
        return declared is ctypes.POINTER(ctypes.c_void_p)
    if ctype.endswith("*"):
        base = ctype[:-1]
        if base in ("char", "uint8_t", "void"):
            return declared in (ctypes.c_char_p, ctypes.c_void_p)
        if base in handles and base not in structs:
            return declared is ctypes.c_void_p
        if base in structs:
            return declared is ctypes.POINTER(structs[base])
        if base in _SCALARS:
            return declared is ctypes.POINTER(_SCALARS[base])
        if base in u32:
            return declared is ctypes.POINTER(ctypes.c_uint32)
    raise AssertionError(f"test does not know the C type {ctype!r}")


# ---- the table -------------------------------------------------------------------


def test_every_header_function_is_declared_once(header_text):
    declared = [row[0] for row in _ffi.FUNCTIONS]
    assert len(declared) == len(set(declared)), "a function is declared twice"
    in_header = set(parse_functions(header_text))
    assert in_header, "parsed no function from the header"
    assert sorted(in_header - set(declared)) == [], "header functions missing from _ffi.FUNCTIONS"
    assert sorted(set(declared) - in_header) == [], "_ffi.FUNCTIONS declares functions not in the header"


def test_declared_types_match_the_header(header_text):
    funcs = parse_functions(header_text)
    wrong = []
    for name, restype, argtypes, _gil, _required in _ffi.FUNCTIONS:
        ret, params = funcs[name]
        if not _matches(ret, restype, header_text):
            wrong.append(f"{name}: returns {ret}, declared {restype}")
        if len(params) != len(argtypes):
            wrong.append(f"{name}: {len(params)} parameters, declared {len(argtypes)}")
            continue
        for i, (c, py) in enumerate(zip(params, argtypes)):
            if not _matches(c, py, header_text):
                wrong.append(f"{name} parameter {i}: {c}, declared {py}")
    assert wrong == []


def test_every_declared_function_is_exported_by_the_loaded_library():
    assert _ffi.lib.missing == []


def test_constants_match_the_header(header_text):
    defines = parse_defines(header_text)
    checked = 0
    for cname, value in defines.items():
        py = cname[len("CIRCUIT_") :]
        if py.startswith("VERSION_"):
            continue
        if cname == "CIRCUIT_ABI_VERSION":
            assert _ffi.ABI_VERSION == int(value, 0)
            checked += 1
            continue
        if py.startswith("STATE_") and py != "STATE_COUNT":
            assert int(getattr(circuit.State, py[len("STATE_") :])) == int(value, 0), cname
            checked += 1
            continue
        if value == "UINT64_MAX":
            value = str(2**64 - 1)
        if hasattr(_ffi, py):
            want = float(value) if "." in value else int(value, 0)
            assert getattr(_ffi, py) == want, cname
            checked += 1
        elif py.startswith(("RESULT_", "OUTCOME_", "OVERRIDE_")):
            pytest.fail(f"{cname} is not known to circuit/_ffi.py")
    assert checked >= 30
    for needed in ("CIRCUIT_WORD_FAST_MASK", "CIRCUIT_WORD_GENERATION_SHIFT", "CIRCUIT_PERMIT_PROBE"):
        assert needed in defines, needed


def test_struct_layouts_match_the_header(header_text):
    for cls in _struct_classes().values():
        fields = parse_struct(header_text, cls.__name__)
        ours = cls._fields_
        assert [f[1] for f in fields] == [f[0] for f in ours], cls.__name__
        for (ctype, name, length), (_n, py) in zip(fields, ours):
            if length is not None:
                n = parse_defines(header_text).get(length, length)
                assert issubclass(py, ctypes.Array) and py._length_ == int(n), name
                py = py._type_
            assert _matches(ctype, py, header_text), (cls.__name__, name)


def test_result_codes_have_names():
    for code in range(_ffi.RESULT_PANIC + 1):
        assert _ffi.result_name(code).startswith("CIRCUIT_RESULT_")
    assert _ffi.result_name(9999) == "CIRCUIT_RESULT_UNKNOWN"


def test_features_report_what_the_library_has():
    bits = _ffi.features()
    assert bits & ~_ffi.FEATURE_SYNC == 0, hex(bits)
    # The library under test (the wheel's, or $CIRCUIT_LIBRARY) is the full
    # one unless CIRCUIT_EXPECT_SLIM says otherwise.
    assert circuit.sync_available() == (os.environ.get("CIRCUIT_EXPECT_SLIM") != "1")


def test_sync_in_the_slim_library_raises_not_built():
    """ci/python.sh also runs this against the slim library (make install
    SLIM=1), with CIRCUIT_EXPECT_SLIM=1."""
    if os.environ.get("CIRCUIT_EXPECT_SLIM") != "1":
        pytest.skip("the library under test is the full one")
    r = circuit.Registry()
    with pytest.raises(circuit.CircuitError) as e:
        r.sync("redis://127.0.0.1:1", "slim")
    assert e.value.code == _ffi.RESULT_NOT_BUILT
    assert "without fleet sync" in str(e.value)


def test_the_installed_package_carries_its_library():
    """ci/python.sh runs the suite against the wheel installed in a fresh
    virtual environment (CIRCUIT_EXPECT_INSTALLED names it), without
    CIRCUIT_LIBRARY: the package imported must be that one, and the library
    loaded the one inside it."""
    venv = os.environ.get("CIRCUIT_EXPECT_INSTALLED")
    if not venv:
        pytest.skip("not run against an installed wheel")
    assert "CIRCUIT_LIBRARY" not in os.environ
    assert circuit.__file__.startswith(venv), circuit.__file__
    lib = circuit.library_path()
    assert os.path.dirname(lib) == os.path.dirname(circuit.__file__), lib
    assert os.path.basename(lib).startswith("libcircuit.") and lib.endswith(".so"), lib
    assert _ffi.candidates()[0] == ("bundled", lib)


def test_versions():
    assert circuit.ABI_VERSION == _ffi.lib.abi_version() == 1
    assert re.match(r"^\d+\.\d+\.\d+", circuit.library_version())
    assert os.path.exists(circuit.library_path()) or circuit.library_path().startswith("libcircuit")


# ---- raw argument passing on the hot path --------------------------------------


def test_raw_record_passes_uint32_values_intact(make):
    """The undeclared record function passes Python ints as C ints; values up
    to 2**32-1 must arrive unchanged (the library names the value it refuses)."""
    b = make()
    raw = _ffi.lib.raw_record_parts
    if raw is None:
        pytest.skip("raw argument passing is off on this platform")
    for v in (2**31 - 1, 2**31, 2**32 - 1):
        assert raw(b._bref, 0, 0, v, 0) == _ffi.RESULT_INVALID_ARGUMENT
        assert f"unknown value {v} " in _ffi.last_error()


def test_raw_record_success_counts_the_current_generation_only(make):
    """The two-argument success record of the hot path (`with`, untimed
    decorator and call()): counted for the breaker's generation, stale for
    any other, generations of 32 bits included."""
    b = make()
    raw = _ffi.lib.raw_record_success
    if raw is None:
        pytest.skip("raw argument passing is off on this platform")
    g = b.generation
    assert raw(b._bref, g) == _ffi.RESULT_OK
    for other in (g + 1, 2**31, 2**32 - 1):
        assert raw(b._bref, other) == _ffi.RESULT_STALE
    m = b.metrics()
    assert (m.successes, m.stale) == (1, 3)
    with b:
        pass
    b.call(lambda: None)
    assert b.metrics().successes == 3


# ---- loading -------------------------------------------------------------------


def _cc():
    return shutil.which("cc") or shutil.which("gcc")


def _compile(tmp_path, source: str, name: str) -> str:
    cc = _cc()
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / (name + ".c")
    src.write_text(textwrap.dedent(source))
    out = tmp_path / (name + ".so")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return str(out)


def test_a_library_of_another_abi_version_is_refused(tmp_path):
    so = _compile(tmp_path, "unsigned circuit_abi_version(void) { return 999; }\n", "abi999")
    with pytest.raises(circuit.LibraryError) as e:
        _ffi.Lib(so)
    msg = str(e.value)
    assert "ABI version 999" in msg and "ABI version 1" in msg and so in msg
    # And at import, in a fresh interpreter, through the environment variable.
    env = dict(os.environ, CIRCUIT_LIBRARY=so)
    r = subprocess.run(
        [sys.executable, "-c", "import circuit"], env=env, capture_output=True, text=True
    )
    assert r.returncode != 0
    assert "circuit.LibraryError" in r.stderr or "LibraryError" in r.stderr
    assert "ABI version 999" in r.stderr
    assert "Segmentation" not in r.stderr


def test_a_library_that_is_not_libcircuit_is_refused(tmp_path):
    so = _compile(tmp_path, "int something_else(void) { return 1; }\n", "other")
    with pytest.raises(circuit.LibraryError, match="not libcircuit"):
        _ffi.Lib(so)


def test_a_library_missing_required_functions_is_refused(tmp_path):
    so = _compile(tmp_path, "unsigned circuit_abi_version(void) { return 1; }\n", "abi1")
    with pytest.raises(circuit.LibraryError, match="does not export circuit_"):
        _ffi.Lib(so)


def test_a_missing_library_names_every_place_tried(tmp_path):
    env = {"CIRCUIT_LIBRARY": str(tmp_path / "nope.so")}
    with pytest.raises(circuit.LibraryError) as e:
        _ffi.load(env=env)
    assert "nope.so" in str(e.value) and "CIRCUIT_LIBRARY" in str(e.value)
    assert isinstance(e.value, ImportError)


def test_search_order(tmp_path):
    assert _ffi.candidates({"CIRCUIT_LIBRARY": "/x/lib.so"}) == [("$CIRCUIT_LIBRARY", "/x/lib.so")]
    got = _ffi.candidates({}, package_dir=str(tmp_path))
    assert got[-1] == ("system loader", "libcircuit.so.0")
    assert all(how != "bundled" for how, _ in got)
    shutil.copy(_ffi.lib.path, tmp_path / "libcircuit.so")
    got = _ffi.candidates({}, package_dir=str(tmp_path))
    assert got[0] == ("bundled", str(tmp_path / "libcircuit.so"))
    # The bundled copy is really loadable.
    lib = _ffi.load(env={}, package_dir=str(tmp_path))
    assert lib.path == str(tmp_path / "libcircuit.so")
    assert lib.abi_version() == 1


def test_bundled_copy_is_used_by_a_fresh_interpreter(tmp_path):
    """Install-like layout: the package folder copied, the library beside it."""
    pkg = tmp_path / "circuit"
    shutil.copytree(os.path.dirname(circuit.__file__), pkg, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(_ffi.lib.path, pkg / "libcircuit.so")
    env = {k: v for k, v in os.environ.items() if k != "CIRCUIT_LIBRARY"}
    env["PYTHONPATH"] = str(tmp_path)
    r = subprocess.run(
        [sys.executable, "-c", "import circuit; print(circuit.library_path())"],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(pkg / "libcircuit.so")


def test_generated_names_are_the_librarys():
    # _cdefs.py is generated from the header's enum identifiers; the library
    # prints the same names.
    assert len(_ffi.STATE_NAMES) == _ffi.STATE_COUNT
    for code, name in enumerate(_ffi.STATE_NAMES):
        assert _ffi.lib.state_str(code).decode() == name
    for code, name in enumerate(_ffi.REASON_NAMES):
        assert _ffi.lib.reason_str(code).decode() == name
    assert circuit.State.HALF_OPEN.label == _ffi.STATE_NAMES[_ffi.STATE_HALF_OPEN]


def test_wrapper_defaults_are_the_librarys():
    # The adaptive-timeout defaults come from the header; the library's own
    # rule (NULL) recommends what AdaptiveTimeout() does.
    rule = circuit.AdaptiveTimeout()
    assert rule._args == (
        _ffi.ADAPTIVE_DEFAULT_PERCENTILE,
        _ffi.ADAPTIVE_DEFAULT_MULTIPLIER,
        _ffi.ADAPTIVE_DEFAULT_FLOOR_NS,
        _ffi.ADAPTIVE_DEFAULT_CEILING_NS,
        _ffi.ADAPTIVE_DEFAULT_BASE_NS,
        _ffi.ADAPTIVE_DEFAULT_MIN_SAMPLES,
    )
    b = circuit.Breaker(latency_histogram=1)
    assert b.recommended_timeout(rule) == b.recommended_timeout()
    rule.close()
    b.close()
