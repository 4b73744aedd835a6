"""The rooms of the architecture notes: what each app may import. A change that crosses a wall fails here."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = {"config", "tenants", "integrations", "sync", "demo"}
ALLOWED = {
    "tenants": {"config", "tenants"},
    "integrations": {"config", "tenants", "integrations"},
    "sync": {"config", "tenants", "integrations", "sync"},
    "demo": OURS,  # make run's demo: installed only with the sandbox, may drive anything
}
MAX_MODULE_LINES = 600
PROVIDERS = {"auction", "constant_contact", "donorbox", "gofundme_pro", "mailchimp", "stripe"}


def _modules(path: Path) -> set[str]:
    """Every module a file imports, by its full dotted name (``from a.b import c`` gives a.b and a.b.c)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _modules(path)} & OURS


def _touches(path: Path, package: str) -> bool:
    return any(name == package or name.startswith(package + ".") for name in _modules(path))


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_each_room_imports_only_what_it_may(room):
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) - ALLOWED[room])
        for path in (ROOT / room).rglob("*.py")
        if _imports(path) - ALLOWED[room]
    }
    assert offenders == {}


def test_the_provider_list_here_is_the_registry():
    from integrations.registry import partner_keys, provider_keys

    assert set(provider_keys()) - {"virtuous"} == PROVIDERS
    assert set(partner_keys()) <= PROVIDERS


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_provider_imports_no_sibling_and_not_the_virtuous_client(provider):
    """A provider is one folder: it leans on integrations.common and tenants, never on another
    provider, and never on Virtuous (mapping produces requests; only the drain calls Virtuous)."""
    forbidden = [f"integrations.{p}" for p in sorted(PROVIDERS - {provider})] + ["integrations.virtuous"]
    offenders = {
        str(path.relative_to(ROOT)): [f for f in forbidden if _touches(path, f)]
        for path in (ROOT / "integrations" / provider).rglob("*.py")
        if any(_touches(path, f) for f in forbidden)
    }
    assert offenders == {}


def test_the_kernel_knows_no_provider():
    # integrations.models is allowed: the token bucket's database backend keeps its rows there.
    forbidden = [f"integrations.{p}" for p in sorted(PROVIDERS | {"virtuous", "registry", "sandbox"})]
    offenders = {
        str(path.relative_to(ROOT)): [f for f in forbidden if _touches(path, f)]
        for path in (ROOT / "integrations" / "common").rglob("*.py")
        if any(_touches(path, f) for f in forbidden)
    }
    assert offenders == {}


def test_sync_reaches_providers_only_through_the_registry():
    """The sync room never imports a provider folder (Virtuous, the CRM it syncs with, it may)."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(p for p in PROVIDERS if _touches(path, f"integrations.{p}"))
        for path in (ROOT / "sync").rglob("*.py")
        if any(_touches(path, f"integrations.{p}") for p in PROVIDERS)
    }
    assert offenders == {}


def test_tenants_imports_nothing_of_integrations():
    """Tenants knows no provider: credential platforms come from a settings hook, not an import."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tenants").rglob("*.py")
        if _touches(path, "integrations")
    ]
    assert offenders == []


def test_the_sandbox_is_an_outside_system():
    """The fake Virtuous must not lean on the code it stands in for (or on the sync room)."""
    offenders = []
    for path in (ROOT / "integrations" / "sandbox").rglob("*.py"):
        text = path.read_text()
        if "integrations.virtuous" in text or "from sync" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_only_the_submitter_writes_to_virtuous():
    """Write calls on the Virtuous client appear in the submitter and onboarding services only."""
    writes = (
        "gift_transaction(",
        "gift_transactions(",
        "contact_transaction(",
        "contact_batch(",
        "recurring_gift_create(",
        "recurring_gift_cancel(",
        "gift_reversing_transaction(",
    )
    allowed = {"sync/outbound/drain.py", "integrations/virtuous/client.py"}
    offenders = []
    for room in ("sync", "integrations", "tenants"):
        for path in (ROOT / room).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel in allowed or rel.startswith("integrations/sandbox/"):
                continue
            text = path.read_text()
            if any(f".{w}" in text for w in writes):
                offenders.append(rel)
    assert offenders == []


def test_no_application_module_is_over_600_lines():
    """A module past 600 lines does several jobs; split it by job (migrations are generated)."""
    offenders = {}
    for room in ("config", "tenants", "integrations", "sync", "demo"):
        for path in (ROOT / room).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" in rel:
                continue
            lines = len(path.read_text().splitlines())
            if lines > MAX_MODULE_LINES:
                offenders[rel] = lines
    assert offenders == {}


def test_fault_points_are_installed_by_test_settings_only():
    """Production code may call fault_point; only the test settings install the hook behind it."""
    installers = [
        path.relative_to(ROOT).as_posix()
        for room in ("config", "tenants", "integrations", "sync", "demo")
        for path in (ROOT / room).rglob("*.py")
        if "fault_hook_install(" in path.read_text() and path.name != "faults.py"
    ]
    assert installers == ["config/settings_test.py"]
