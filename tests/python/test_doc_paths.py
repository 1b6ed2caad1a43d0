"""Every repository path that README.md and docs/*.md name exists.

Docs that name files which have since moved send readers to nothing (`src/gen.rs`
became `src/cli/synthetic.rs`). This scans the README and the top-level docs for
repository paths and checks each one against the working tree:

- words inside inline code spans and fenced code blocks that start with a top-level
  folder of the repository (`src/`, `tests/`, `benches/`, ...) or are a top-level file
  (`Cargo.toml`, `cohort.toml`, ...);
- relative Markdown link targets (resolved against the linking file's folder).

A `:line` suffix and surrounding punctuation are stripped, `*` globs must match at
least one file, `{a,b}` is expanded, and words holding a `<placeholder>` or an
ellipsis are skipped. docs/notes/ is left out: it quotes other projects' trees.
"""
import glob
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

TOP_FOLDERS = (
    "src", "cohort", "cohort-serve", "cohort-snapshot", "tests", "benches", "docs", "fuzz", "python", "queries",
    "data", "schema", "scripts", ".ci",
)
TOP_FILES = ("Cargo.toml", "Cargo.lock", "cohort.toml", "README.md")

FENCE = re.compile(r"^ {0,3}(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
LINE_SUFFIX = re.compile(r"(?::\d+(?:[-:]\d+)*)+$")
BRACES = re.compile(r"\{([^{}]*)\}")
LEADING = "([{\"'"
TRAILING = ".,;:!?)]}\"'"


def doc_files():
    readme = REPO / "README.md"
    if not readme.is_file():
        pytest.fail(f"{readme} is missing: nothing to check the docs' paths against")
    docs = sorted((REPO / "docs").glob("*.md"))
    if not docs:
        pytest.fail(f"no Markdown files in {REPO / 'docs'}")
    return [readme, *docs]


def expand_braces(word):
    match = BRACES.search(word)
    if not match:
        return [word]
    head, tail = word[: match.start()], word[match.end():]
    out = []
    for part in match.group(1).split(","):
        out.extend(expand_braces(head + part + tail))
    return out


def as_repo_path(word):
    """The repository path a word of code names, or None if it names none."""
    if "<" in word or ">" in word or "…" in word or "..." in word:
        return None
    word = word.split("|", 1)[0]  # `queries/*.toml|json`: the first spelling
    word = word.lstrip(LEADING)
    if word.startswith("./"):
        word = word[2:]
    word = word.rstrip(TRAILING)
    word = LINE_SUFFIX.sub("", word)
    word = word.rstrip(TRAILING)
    if word in TOP_FILES:
        return word
    if "/" not in word:
        return None
    if word.split("/", 1)[0] not in TOP_FOLDERS:
        return None
    return word


def split_fences(text):
    """(prose with fenced lines blanked, [(line number, fenced line)])."""
    prose, fenced, inside = [], [], False
    for number, line in enumerate(text.split("\n"), start=1):
        if FENCE.match(line):
            inside = not inside
            prose.append("")
        elif inside:
            fenced.append((number, line))
            prose.append("")
        else:
            prose.append(line)
    return "\n".join(prose), fenced


def named_paths(text):
    """(line number, path relative to the repository or to the file, is_link) triples."""
    prose, fenced = split_fences(text)
    found = []

    def words(number, code):
        for word in code.split():
            path = as_repo_path(word)
            if path is not None:
                found.append((number, path, False))

    for number, line in fenced:
        words(number, line)
    for match in CODE_SPAN.finditer(prose):
        words(prose.count("\n", 0, match.start()) + 1, match.group(2))
    # Links: outside code spans only (blank them, keeping offsets).
    no_code = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), prose)
    for match in LINK.finditer(no_code):
        target = match.group(1).split("#", 1)[0]
        if not target or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
            continue  # an anchor in the same file, or a URL
        found.append((no_code.count("\n", 0, match.start()) + 1, target, True))
    return found


def exists(base, path):
    for candidate in expand_braces(path):
        full = base / candidate
        if any(ch in candidate for ch in "*?["):
            if not glob.glob(str(full), recursive=True):
                return False
        elif not full.exists():
            return False
    return True


def test_every_path_named_in_the_docs_exists():
    missing, checked = [], 0
    for doc in doc_files():
        for number, path, is_link in named_paths(doc.read_text(encoding="utf-8")):
            base = doc.parent if is_link else REPO
            if is_link:
                resolved = (base / path).resolve()
                if REPO not in resolved.parents and resolved != REPO:
                    continue  # outside the repository (../shared/SPEC.md)
            checked += 1
            if not exists(base, path):
                missing.append(f"{doc.relative_to(REPO)}:{number}: {path}")
    # The README alone names dozens of paths; finding none means the scanner broke.
    assert checked >= 20, f"only {checked} paths found in the docs: is the scanner broken?"
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("text, expected", [
    ("see `src/gen.rs:12`, then", [(1, "src/gen.rs", False)]),
    ("`cargo bench --bench hot_paths` and `benches/realistic/compare.py --rounds 3`",
     [(1, "benches/realistic/compare.py", False)]),
    ("`queries/<group-id>.toml` and `queries/*.toml|json`", [(1, "queries/*.toml", False)]),
    ("a `target/release/cohort`, a `/tmp/x/src/a.rs`, `$CARGO_TARGET_DIR/src/x`", []),
    ("```sh\npython3 benches/compare/compare.py --cohort x\n```\n`Cargo.toml`.",
     [(2, "benches/compare/compare.py", False), (4, "Cargo.toml", False)]),
    ("[schema](../schema/group.schema.json) and [site](https://example.org/x)",
     [(1, "../schema/group.schema.json", True)]),
    ("one span over\ntwo lines: `a b\nsrc/lib.rs`", [(2, "src/lib.rs", False)]),
    ("(`tests/it/`; `evaluate/keys.rs`)", [(1, "tests/it/", False)]),
])
def test_paths_are_found_in_markdown(text, expected):
    assert named_paths(text) == expected


def test_globs_and_braces_are_checked():
    assert exists(REPO, "queries/*.toml")
    assert not exists(REPO, "queries/*.nothing")
    assert exists(REPO, "benches/{hot_paths,lookup}.rs")
    assert not exists(REPO, "benches/{hot_paths,gone}.rs")
