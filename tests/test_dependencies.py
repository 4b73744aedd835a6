"""Every third-party package the code imports is pinned directly in the right .in file, and both
locks carry hashes (``make`` installs them with ``--require-hashes``)."""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"config", "tenants", "integrations", "sync", "staff", "tests", "bench", "manage"}


def _pinned(name: str) -> set[str]:
    names = set()
    for line in (ROOT / name).read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==", line.strip())
        if match:
            names.add(match.group(1).lower().replace("_", "-"))
    return names


def _third_party_imports(folders: list[str]) -> set[str]:
    found = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in OURS}


def _distributions(modules: set[str]) -> dict[str, set[str]]:
    dists = packages_distributions()
    return {m: {d.lower().replace("_", "-") for d in dists.get(m, [])} for m in modules}


def test_runtime_imports_are_pinned_in_requirements_in():
    runtime = _pinned("requirements.in")
    missing = {
        module: dists
        for module, dists in _distributions(
            _third_party_imports(["config", "tenants", "integrations", "sync", "staff"])
        ).items()
        if not dists & runtime
    }
    assert missing == {}


def test_test_imports_are_pinned_in_one_of_the_two():
    pinned = _pinned("requirements.in") | _pinned("requirements-dev.in")
    missing = {m: d for m, d in _distributions(_third_party_imports(["tests"])).items() if not d & pinned}
    assert missing == {}


def test_both_locks_carry_a_hash_for_every_package():
    for lock in ("requirements.txt", "requirements-dev.txt"):
        blocks = re.split(r"\n(?=[a-z0-9])", (ROOT / lock).read_text(), flags=re.I)
        packages = [b for b in blocks if re.match(r"^[A-Za-z0-9_.-]+==", b)]
        assert packages and all("--hash=sha256:" in b for b in packages), lock
    assert "--require-hashes" in (ROOT / "Makefile").read_text()
