"""requirements.lock: the reference environment that `make` installs from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
        assert m, f"not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def test_every_dependency_is_pinned_within_its_bounds():
    """Each runtime and dev dependency of pyproject.toml has one exact version in the lock, and
    that version satisfies pyproject's specifier; torch is left to the Makefile's TORCH."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock()
    for spec in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name == "torch":
            assert name not in pins
            continue
        assert name in pins, f"{req.name} is not in requirements.lock: run make lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}: run make lock")


def test_make_installs_from_the_lock():
    make = (ROOT / "Makefile").read_text()
    assert "LOCK ?= requirements.lock" in make
    assert "pip install -q $(if $(LOCK),-c $(LOCK)) -e '.[dev]'" in make
