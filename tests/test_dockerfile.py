"""The image's contract, read from the Dockerfile (no Docker engine runs where the tests do)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway.cli import parser

DOCKERFILE = (Path(__file__).parent.parent / "Dockerfile").read_text()


def instruction(name: str) -> str:
    [line] = re.findall(rf"^{name} (.+)$", DOCKERFILE, re.M)
    return line


def test_the_image_runs_gateway_serve_on_every_interface_as_a_non_root_user() -> None:
    command = json.loads(instruction("ENTRYPOINT")) + json.loads(instruction("CMD"))
    assert command[0] == "gateway"
    args = parser().parse_args(command[1:])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 8080)
    assert instruction("EXPOSE") == "8080"
    assert instruction("USER") not in {"root", "0"}
    assert "http://127.0.0.1:8080/healthz" in DOCKERFILE.split("HEALTHCHECK", 1)[1]


def test_the_image_copies_what_the_package_needs() -> None:
    copied = {p for line in re.findall(r"^COPY (.+) \S+$", DOCKERFILE, re.M) for p in line.split()}
    assert {"pyproject.toml", "gateway", "adapters"} <= copied
    for path in copied:
        assert (Path(__file__).parent.parent / path).exists(), path


def test_the_image_installs_the_locked_versions_on_a_pinned_base() -> None:
    base = instruction("FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base), base
    runs = re.findall(r"^RUN (.+)$", DOCKERFILE, re.M)
    assert runs[0] == "pip install --require-hashes -r requirements-runtime.lock"
    assert runs[1].startswith("pip install --no-deps . ")  # nothing unlocked comes in with it
