"""The README stays short and starts with the commands; the docs' links resolve; every setting is documented."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
CONFIGURATION = ROOT / "docs" / "configuration.md"

# [text](target) and ![alt](target), with an optional "title"; the target up to whitespace or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# How tvwidget's code reads a setting: config.setting("NAME") or setting('NAME', default).
SETTING_READ = re.compile(r"""\bsetting\(\s*["']([A-Z][A-Z0-9_]*)["']""")


def relative_links(text: str) -> list[str]:
    """Return the link targets in Markdown ``text`` that point into the repository (no scheme, no mailto)."""
    targets = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("//"):
            continue
        targets.append(target)
    return targets


def settings_read(package: Path) -> set[str]:
    """Return every setting name the package's code reads with ``setting("NAME"...)``."""
    return {name for path in package.rglob("*.py") for name in SETTING_READ.findall(path.read_text("utf-8"))}


def undocumented(names: set[str], documentation: str) -> set[str]:
    """Return the names whose ``TVWIDGET_<NAME>`` does not appear, in backticks, in ``documentation``."""
    return {name for name in names if f"`TVWIDGET_{name}`" not in documentation}


def test_readme_is_short_and_starts_with_the_commands():
    lines = README.read_text("utf-8").splitlines()
    assert len(lines) <= 180, f"README.md has {len(lines)} lines; move details to docs/"
    top = "\n".join(lines[:15])
    assert "make run" in top and "make test" in top, "README.md's first 15 lines must show make run and make test"


@pytest.mark.parametrize("document", [README, *DOCS], ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_to_a_file(document):
    broken = []
    for target in relative_links(document.read_text("utf-8")):
        path = target.split("#", 1)[0]
        if not path:
            continue  # a link within the same page
        if not (document.parent / path).resolve().exists():
            broken.append(target)
    assert not broken, f"{document.relative_to(ROOT)} links to missing files: {broken}"


def test_the_link_check_sees_relative_links_only():
    text = ("[a](docs/a.md) ![b](docs/screenshots/b.png \"title\") [c](https://example.com/x.md) "
            "[d](#anchor) [e](mailto:x@example.com) [f](../openapi.yaml#/paths)")
    assert relative_links(text) == ["docs/a.md", "docs/screenshots/b.png", "#anchor", "../openapi.yaml#/paths"]


def test_every_setting_tvwidget_reads_is_documented():
    names = settings_read(ROOT / "tvwidget")
    assert {"EMBED_SECRET", "STATUS_POLL_SECONDS", "WORKER_INTERVALS"} <= names  # the scan finds reads
    missing = undocumented(names, CONFIGURATION.read_text("utf-8"))
    assert not missing, f"docs/configuration.md does not document: {sorted(missing)}"


def test_the_settings_check_notices_a_missing_row():
    documentation = "| `TVWIDGET_ALPHA` | `1` | a |\n| `TVWIDGET_BETA_SECONDS` | `2` | b |\n"
    assert undocumented({"ALPHA", "BETA"}, documentation) == {"BETA"}  # a longer name does not count
    source = 'x = setting("ALPHA")\ny = config.setting( \'BETA\', 15)\nz = settings()["GAMMA"]\n'
    assert set(SETTING_READ.findall(source)) == {"ALPHA", "BETA"}


# A test file named in prose: tests/…/test_x.py (the django-helpdesk integration's are under its own folder).
TEST_PATH = re.compile(r"\btests/[a-z0-9_/]+\.py\b")
PROSE = [README, *DOCS, ROOT / "clients" / "python" / "README.md"]


def missing_test_files(text: str, *roots: Path) -> set[str]:
    """Return the ``tests/…py`` paths named in ``text`` that exist under none of ``roots``."""
    return {path for path in TEST_PATH.findall(text) if not any((root / path).is_file() for root in roots)}


@pytest.mark.parametrize("document", PROSE, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_test_file_the_docs_name_exists(document):
    roots = (ROOT, ROOT / "integrations" / "django_helpdesk", ROOT / "clients" / "python")
    assert missing_test_files(document.read_text("utf-8"), *roots) == set()


def test_the_test_file_check_notices_a_moved_file():
    assert missing_test_files("see tests/test_docs.py and tests/test_no_such_file.py", ROOT) == {
        "tests/test_no_such_file.py"}
