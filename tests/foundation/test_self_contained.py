"""Nothing in the repository reads from outside its own tree: a clone into an empty folder must
pass on its own (.ci/run runs the suite from such a clone)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEXT = (".py", ".sh", ".md", ".toml", ".yaml", ".yml", ".json", ".cfg", ".txt", ".tpl", ".go", ".mod", "")
PARENTS = re.compile(r"\bparents\[(\d+)\]")
DOTDOT = re.compile(r"(?<![\w.])((?:\.\./)+)[\w.-]*")
# a path built by stepping above a name that holds the repository root
ROOT_PARENT = re.compile(r"\b(?:REPO|ROOT|REPO_ROOT|repo_root\(\))\.parent\b")


def _files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout.split()
    files = [REPO / f for f in out]
    return [f for f in files if f.is_file() and f.suffix in TEXT and "/traces/" not in f.as_posix()
            and f.name != "test_self_contained.py"]


def _escapes(base: Path, up: int) -> bool:
    target = base
    for _ in range(up):
        target = target.parent
    return not target.resolve().is_relative_to(REPO)


def test_no_path_leaves_the_repository():
    found = []
    for f in _files():
        text = f.read_text(errors="replace")
        rel = f.relative_to(REPO)
        for m in PARENTS.finditer(text):
            # Path(__file__).resolve().parents[k] is the (k+1)-th folder above the file
            if _escapes(f.parent, int(m.group(1))):
                found.append(f"{rel}: {m.group()} is above the repository root")
        for m in DOTDOT.finditer(text):
            ups = m.group(1).count("../")
            # relative to the file's own folder (links, includes); scripts run from the root
            script = f.suffix in (".sh", "") or f.parent.name == "scripts"
            if _escapes(f.parent, ups) or (script and _escapes(REPO, ups)):
                found.append(f"{rel}: {m.group()!r} leaves the repository")
        for m in ROOT_PARENT.finditer(text):
            found.append(f"{rel}: {m.group()} is the folder above the repository")
    assert not found, "\n".join(found)


def test_the_scan_finds_what_it_is_for(tmp_path):
    # the patterns match the ways a path escaped before
    assert DOTDOT.search('Path("../data/traces")') and ROOT_PARENT.search('REPO.parent / "data"')
    assert PARENTS.search("Path(__file__).resolve().parents[2]")
    assert _escapes(REPO / "tests" / "x", 3) and not _escapes(REPO / "tests" / "x", 2)
    assert not DOTDOT.search("x = a..b") and not DOTDOT.search("kubectl get foo.bar/x")
