#!/usr/bin/env python3
"""Every code block of a README is a region of a file that the tests build.

A fenced block in C, C++, Python, Go or Rust must stand right under a marker

    <!-- snippet: PATH#NAME -->

and equal, after removing the common indentation, the lines between
`readme:begin NAME` and `readme:end NAME` (in comments) of PATH, a file that
`make test` compiles and runs. So the docs cannot rot: a change that breaks
an example breaks its test, and a change to the example that is not copied
into the README fails this check.

    python3 ci/readme_snippets.py           # check (exit 1 on drift)
    python3 ci/readme_snippets.py --update  # copy the regions into the READMEs

Blocks in other languages (sh, plain text) are commands and sample output,
not code, and are left alone.
"""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

CODE_LANGUAGES = {"c", "cpp", "c++", "python", "py", "go", "rust", "rs"}
MARKER = re.compile(r"^<!--\s*snippet:\s*(?P<path>[^#\s]+)#(?P<name>[\w.-]+)\s*-->\s*$")
FENCE = re.compile(r"^(?P<fence>```+)\s*(?P<lang>[\w+-]*)\s*$")


def region(path: Path, name: str) -> str:
    """The dedented lines between `readme:begin NAME` and `readme:end NAME`."""
    begin = re.compile(rf"readme:begin\s+{re.escape(name)}\s*(\*/)?\s*$")
    end = re.compile(rf"readme:end\s+{re.escape(name)}\s*(\*/)?\s*$")
    lines = path.read_text().splitlines()
    starts = [i for i, l in enumerate(lines) if begin.search(l)]
    ends = [i for i, l in enumerate(lines) if end.search(l)]
    if len(starts) != 1 or len(ends) != 1 or ends[0] <= starts[0]:
        raise ValueError(f"{path}: needs exactly one 'readme:begin {name}' before one 'readme:end {name}'")
    return textwrap.dedent("\n".join(lines[starts[0] + 1 : ends[0]])).strip("\n")


def blocks(text: str):
    """(marker line index or None, fence line index, closing index, language) per block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        close = next(
            (j for j in range(i + 1, len(lines)) if lines[j].strip() == m["fence"]), None
        )
        if close is None:
            raise ValueError(f"line {i + 1}: unclosed code block")
        prev = i - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        yield (prev if prev >= 0 and MARKER.match(lines[prev]) else None), i, close, m["lang"].lower()
        i = close + 1


def check(readme: Path, root: Path, update: bool) -> list:
    problems = []
    text = readme.read_text()
    lines = text.splitlines()
    replacements = []
    for marker, start, close, lang in blocks(text):
        where = f"{readme.relative_to(root)}:{start + 1}"
        if lang not in CODE_LANGUAGES:
            continue
        if marker is None:
            problems.append(f"{where}: a {lang} block without a '<!-- snippet: PATH#NAME -->' marker")
            continue
        m = MARKER.match(lines[marker])
        source = root / m["path"]
        if not source.is_file():
            problems.append(f"{where}: {m['path']} does not exist")
            continue
        try:
            want = region(source, m["name"])
        except ValueError as e:
            problems.append(f"{where}: {e}")
            continue
        have = "\n".join(lines[start + 1 : close])
        if have != want:
            if update:
                replacements.append((start + 1, close, want.splitlines()))
            else:
                problems.append(
                    f"{where}: differs from {m['path']}#{m['name']} "
                    f"(run python3 ci/readme_snippets.py --update)"
                )
    if replacements:
        for first, last, new in reversed(replacements):
            lines[first:last] = new
        readme.write_text("\n".join(lines) + "\n")
        print(f"readme: updated {readme.relative_to(root)}")
    return problems


def main() -> int:
    update = "--update" in sys.argv[1:]
    root = Path(__file__).resolve().parent.parent
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout.split()
    readmes = [root / p for p in listed if Path(p).name.lower().startswith("readme")]
    problems, checked = [], 0
    for readme in readmes:
        try:
            problems += check(readme, root, update)
        except ValueError as e:
            problems.append(f"{readme.relative_to(root)}: {e}")
        checked += sum(1 for _, _, _, lang in blocks(readme.read_text()) if lang in CODE_LANGUAGES)
    for p in problems:
        print(f"readme: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"readme: {checked} code blocks in {len(readmes)} READMEs match the files the tests build")
    return 0


if __name__ == "__main__":
    sys.exit(main())
