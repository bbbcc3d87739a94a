"""The integration is a package of its own: its wheel holds the templates, the ja catalog and the migration,
and declares django-helpdesk 2.6 and the host kit as its requirements."""
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parents[1]
REQUIRED = [
    "tvwidget_helpdesk/templates/helpdesk/ticket.html",
    "tvwidget_helpdesk/templates/tvwidget_helpdesk/panel.html",
    "tvwidget_helpdesk/locale/ja/LC_MESSAGES/django.mo",
    "tvwidget_helpdesk/migrations/0001_initial.py",
    "tvwidget_helpdesk/templatetags/tvwidget_helpdesk.py",
    "tvwidget_helpdesk/middleware.py",
]


def test_the_wheel_holds_what_the_app_needs(tmp_path):
    if not importlib.util.find_spec("build"):
        pytest.skip("needs the 'build' package (tvwidget's test extra)")
    source = tmp_path / "src"
    shutil.copytree(HERE, source, ignore=shutil.ignore_patterns(
        "helpdesk_tests", "demo", "*.egg-info", "build", "__pycache__", ".pytest_cache"))
    command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(source)]
    # Offline when this interpreter has the build requirements (build checks their versions), else from PyPI.
    result = subprocess.run([*command, "--no-isolation"], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("tvwidget_django_helpdesk-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert set(REQUIRED) <= names, set(REQUIRED) - names
    assert not [name for name in names if name.startswith(("helpdesk_tests/", "demo/"))]
    assert "Requires-Dist: django-helpdesk<2.7,>=2.6" in metadata and "Requires-Dist: tvwidget-host" in metadata
