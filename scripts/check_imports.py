#!/usr/bin/env python3
"""No module imports a module that imports it back (issue 37): run by .ci/run.

For every crate of the workspace, each `.rs` file is a module (`a/b.rs` and `a/b/mod.rs`
are `a::b`; `lib.rs` and `main.rs` are the crate root). A module *uses* another when it
names a path into it: `crate::a::b`, `super::b` or `self::b` (in `use` lines or inline).
Two modules that use each other form a loop, unless one contains the other: a parent
declares and re-exports its children, and children read what their parent defines.

Exit 1 and print every loop, or print how many modules were checked and exit 0.
"""

import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
CRATES = {
    "cohort": REPO / "cohort" / "src",
    "cohort-serve": REPO / "cohort-serve" / "src",
    "cohort-snapshot": REPO / "cohort-snapshot" / "src",
    "cohort-cli": REPO / "src",
}
PATH = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
COMMENT = re.compile(r"//.*$", re.M)


def module_of(root: pathlib.Path, file: pathlib.Path) -> tuple:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def resolve(modules: set, path: tuple) -> tuple:
    """The deepest module that `path` (module names, then maybe an item) lies in."""
    for n in range(len(path), -1, -1):
        if path[:n] in modules:
            return path[:n]
    return ()


def brace_paths(text: str, start: int) -> list:
    """The paths of a `use x::{a, b::c}` group that begins at `start` (after `::{`)."""
    depth, i, current, out = 1, start, "", []
    while i < len(text) and depth:
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if depth == 1 and ch in ",}":
            out.append(current.strip())
            current = ""
        elif depth >= 1:
            current += ch
        i += 1
    if current.strip():
        out.append(current.strip())
    return [p.split("::")[0].split(" as ")[0].strip() for p in out if p.strip()]


def uses(text: str, here: tuple, modules: set) -> set:
    text = COMMENT.sub("", text)
    found = set()
    for m in PATH.finditer(text):
        anchor, rest = m.group(1), m.group(2).split("::")[1:]
        if anchor == "crate":
            base = ()
        elif anchor == "super":
            base = here[:-1]
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        else:
            base = here
        heads = [rest]
        end = m.end()
        if text[end:end + 3] == "::{":
            heads = [rest + [h] for h in brace_paths(text, end + 3) if h not in ("self", "*")]
        for head in heads:
            target = resolve(modules, base + tuple(head))
            if target != here:
                found.add(target)
    return found


def main() -> int:
    loops, checked = [], 0
    for crate, root in CRATES.items():
        files = {module_of(root, f): f for f in root.rglob("*.rs")}
        modules = set(files)
        graph = {m: uses(f.read_text(encoding="utf-8"), m, modules) for m, f in files.items()}
        checked += len(graph)
        for a, targets in graph.items():
            for b in targets:
                related = a[: len(b)] == b or b[: len(a)] == a
                if not related and a < b and a in graph.get(b, set()):
                    show = lambda m: "::".join(m) or "(root)"
                    loops.append(f"{crate}: {show(a)} <-> {show(b)}")
    if loops:
        print("modules that import each other:\n  " + "\n  ".join(sorted(loops)))
        return 1
    print(f"no import loops among {checked} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
