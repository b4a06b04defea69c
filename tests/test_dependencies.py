"""pyproject.toml, requirements.lock and the installed environment agree.

The lock is what `make install`, CI and the Docker image install, so it must hold every package
pyproject.toml asks for (at a version its range allows), nothing that no declared requirement
pulls in, and exactly what this environment runs. ``RAGLOOP_LOCK_FILE`` names a candidate lock
(``make update-deps`` tests one before writing it).
"""

from __future__ import annotations

import importlib.metadata
import os
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# Installers' own tools: pip freeze leaves them out, and so does the lock.
TOOLING = {"pip", "setuptools", "wheel", "ragloop"}


# Read at collection: the suite's autouse fixture clears RAGLOOP_* variables before each test.
LOCK = Path(os.environ.get("RAGLOOP_LOCK_FILE", ROOT / "requirements.lock"))


def read_lock(path: Path) -> dict[str, Version]:
    """Package name -> pinned version; every line must be ``name==version``."""
    pins: dict[str, Version] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"{path.name}:{n}: {raw!r} is not a name==version pin"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def declared() -> list[Requirement]:
    """Every requirement of pyproject.toml: runtime and every extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    env = default_environment()
    return any(req.marker.evaluate({**env, "extra": e}) for e in extras or {""})


def closure(roots: list[Requirement]) -> set[str]:
    """Canonical names of everything the requirements pull in, read from installed metadata."""
    seen: set[str] = set()
    todo: list[tuple[Requirement, set[str]]] = [(r, set()) for r in roots]
    while todo:
        req, parent_extras = todo.pop()
        if not applies(req, parent_extras):
            continue
        name = canonicalize_name(req.name)
        dist = importlib.metadata.distribution(name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for child in dist.requires or []:
            todo.append((Requirement(child), set(req.extras)))
    return {k.split("[", 1)[0] for k in seen}


def test_every_declared_requirement_is_locked_within_its_range() -> None:
    pins = read_lock(LOCK)
    problems = []
    for req in declared():
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name} is in pyproject.toml but not in the lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"locked {req.name}=={pins[name]} is outside pyproject's {req}")
    assert not problems, "; ".join(problems) + " (run make update-deps)"


def test_the_lock_holds_nothing_the_project_does_not_pull_in() -> None:
    pins = read_lock(LOCK)
    needed = closure(declared())
    orphans = sorted(set(pins) - needed - TOOLING)
    assert not orphans, f"locked but required by nothing in pyproject.toml: {orphans}"
    missing = sorted(needed - set(pins) - TOOLING)
    assert not missing, f"pulled in by pyproject.toml but not locked: {missing}"


def test_the_environment_is_exactly_the_lock() -> None:
    pins = read_lock(LOCK)
    installed = {
        canonicalize_name(d.metadata["Name"]): Version(d.version)
        for d in importlib.metadata.distributions()
    }
    drift = [
        f"{name}: locked {pins.get(name)}, installed {installed.get(name)}"
        for name in sorted((set(pins) | set(installed)) - TOOLING)
        if pins.get(name) != installed.get(name)
    ]
    assert not drift, "; ".join(drift) + " (make install re-syncs .venv with the lock)"


def imported_top_level_modules(package_dir: Path) -> dict[str, set[str]]:
    """Top-level module name -> files under ``package_dir`` that import it (absolute imports)."""
    import ast
    import sys

    found: dict[str, set[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".", 1)[0]
                if top in sys.stdlib_module_names or top in ("__future__", package_dir.name):
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared() -> None:
    """What src/ragloop imports comes from a distribution pyproject.toml names (runtime or an
    extra), not one that merely happens to arrive as somebody else's dependency."""
    names = {canonicalize_name(req.name) for req in declared()}
    providers = importlib.metadata.packages_distributions()
    problems = []
    for module, files in sorted(imported_top_level_modules(ROOT / "src" / "ragloop").items()):
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists:
            problems.append(f"{module} (no installed distribution provides it; {sorted(files)})")
        elif not dists & names:
            problems.append(f"{module} from {sorted(dists)} (imported by {sorted(files)})")
    assert not problems, "imported but not declared in pyproject.toml: " + "; ".join(problems)
