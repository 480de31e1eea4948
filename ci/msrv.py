#!/usr/bin/env python3
"""Every published crate's `rust-version` is at least that of everything it
builds with: each dependency it compiles on Linux (normal and build
dependencies, as locked in Cargo.lock, `cargo metadata --filter-platform`)
and each workspace crate it depends on. Exit 1 naming the offenders.

What this does not see: language features and std APIs newer than the
declared version in our own code. Clippy's `incompatible_msrv` lint (run
under -D warnings by ci/lint.sh) catches std APIs; language features are
not checked by any tool available here (no older toolchain is installed).

    python3 ci/msrv.py
"""

import json
import subprocess
import sys


def version(s):
    return tuple(int(x) for x in s.split(".")) + (0,) * (3 - len(s.split(".")))


def main():
    host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    triple = next(l.split()[1] for l in host.splitlines() if l.startswith("host:"))
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", triple],
        capture_output=True, text=True, check=True).stdout)
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    members = set(meta["workspace_members"])
    bad = []
    for mid in sorted(members, key=lambda i: packages[i]["name"]):
        crate = packages[mid]
        if crate["publish"] == []:  # publish = false
            continue
        ours = crate["rust_version"]
        if not ours:
            bad.append(f"{crate['name']}: no rust-version")
            continue
        seen, stack, floor = set(), [mid], ("0", "")
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            for d in nodes[i]["deps"]:
                if any(k["kind"] in (None, "build") for k in d["dep_kinds"]):
                    stack.append(d["pkg"])
        for i in sorted(seen - {mid}):
            dep = packages[i]
            theirs = dep["rust_version"]
            if not theirs:
                continue
            if version(theirs) > version(floor[0]):
                floor = (theirs, f"{dep['name']} {dep['version']}")
            if version(theirs) > version(ours):
                bad.append(f"{crate['name']} says rust-version {ours}, but "
                           f"{dep['name']} {dep['version']} needs {theirs}")
        print(f"msrv: {crate['name']}: rust-version {ours}; "
              f"{len(seen) - 1} dependencies, the highest needs {floor[0]} ({floor[1]})")
    for b in bad:
        print(f"msrv: {b}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
