"""Reproducible installs: the venv holds exactly requirements/lock.txt, and the lock covers setup.cfg.

``make run`` and ``make test`` install from the lock, so a release nobody here has tried never
reaches a fresh clone.  ``make test-latest`` runs the suite on the newest releases instead
(TVWIDGET_UNLOCKED=1), where only the lock's coverage of setup.cfg is checked.
"""
import os
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "lock.txt"
EXTRAS = ("test", "postgres", "server")
PIN_RE = re.compile(r"^(?P<requirement>[A-Za-z0-9._-]+(\[[^\]]*\])?==[^\s;]+(\s*;.*)?)$")


def _pins() -> dict:
    """Map each package the lock pins for this interpreter and platform to its version."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = PIN_RE.match(line.strip())
        if match:
            requirement = Requirement(match["requirement"])
            if requirement.marker is None or requirement.marker.evaluate():
                pins[canonicalize_name(requirement.name)] = next(iter(requirement.specifier)).version
    return pins


# The repository's own packages (installed editable, so not in the lock) and the extras the Makefile installs.
PROJECTS = {"tvwidget": EXTRAS, "tvwidget-host": (), "tvwidget-django-helpdesk": ("test",)}


def _tvwidget_requirements() -> list[Requirement]:
    """The third-party requirements of the repository's packages, with the extras installed, for this interpreter."""
    wanted = []
    for project, extras in PROJECTS.items():
        wanted += _requirements(project, extras)
    return [r for r in wanted if canonicalize_name(r.name) not in PROJECTS]


def _requirements(project: str, extras: tuple) -> list[Requirement]:
    wanted = []
    for text in metadata.requires(project) or ():
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in ("", *extras)):
            wanted.append(requirement)
    return wanted


def test_the_lock_pins_every_requirement_of_setup_cfg_within_its_range():
    pins = _pins()
    assert len(pins) > 50, "requirements/lock.txt looks empty or unparsable"
    unpinned = [str(r) for r in _tvwidget_requirements() if canonicalize_name(r.name) not in pins]
    outside = [f"{r} (locked {pins[canonicalize_name(r.name)]})" for r in _tvwidget_requirements()
               if canonicalize_name(r.name) in pins and pins[canonicalize_name(r.name)] not in r.specifier]
    assert not unpinned and not outside, (
        f"requirements/lock.txt is behind setup.cfg (run `make lock`): not pinned {unpinned}; "
        f"outside setup.cfg's range {outside}")


@pytest.mark.skipif(bool(os.environ.get("TVWIDGET_UNLOCKED")), reason="make test-latest runs unlocked on purpose")
def test_the_venv_holds_exactly_the_locked_versions():
    pins = _pins()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {name: (installed[name], version) for name, version in pins.items()
             if name in installed and installed[name] != version}
    missing = sorted(name for name in pins if name not in installed)
    assert not wrong and not missing, (
        f"this venv is not the lock's (run `make clean test`): installed vs locked {wrong}; missing {missing}")
