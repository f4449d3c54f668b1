"""Reproducible installs: the lock files pin, with hashes, every package pyproject.toml asks for,
the image's lock is CI's at the same versions, and CI installs from it (the Dockerfile from the
image's: tests/test_dockerfile.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def locked(name: str) -> dict[str, str]:
    """Package → pinned version, of one lock file; each pin must carry its hashes."""
    text = (ROOT / name).read_text()
    # `name==version[ ; marker] \` then its `--hash=sha256:` lines
    pins = re.findall(
        r"^([A-Za-z0-9._-]+)==([^\s;]+)([^\n]*\\\n\s+--hash=sha256:[0-9a-f]{64})?", text, re.M
    )
    unhashed = [package for package, _, hashes in pins if not hashes]
    assert not unhashed, f"{name}: pinned without hashes: {unhashed}"
    return {canonicalize_name(package): version for package, version, _ in pins}


def wanted(*extras: str) -> list[Requirement]:
    listed = PYPROJECT["dependencies"] + [
        r for extra in extras for r in PYPROJECT["optional-dependencies"][extra]
    ]
    return [Requirement(r) for r in listed]


def assert_pins(lock: dict[str, str], requirements: list[Requirement]) -> None:
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement} is not in the lock: run .ci/lock"
        assert requirement.specifier.contains(lock[name], prereleases=True), (
            f"{requirement}: the lock has {lock[name]}: run .ci/lock"
        )


def test_the_ci_lock_pins_every_dependency_and_extra_with_hashes() -> None:
    assert_pins(locked("requirements.lock"), wanted("postgres", "dev"))


def test_the_image_lock_is_the_runtime_part_of_the_ci_lock_at_the_same_versions() -> None:
    runtime, ci = locked("requirements-runtime.lock"), locked("requirements.lock")
    assert_pins(runtime, wanted("postgres"))
    assert {name: ci.get(name) for name in runtime} == runtime  # what CI tested
    assert "pytest" not in runtime  # no test tools in the image


def test_ci_installs_from_the_lock() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet --require-hashes -r requirements.lock" in ci
    assert "pip install --quiet --no-deps -e ." in ci
    assert "pytest" in ci.splitlines()[-1]  # the README's test command, last
