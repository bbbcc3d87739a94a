"""Where the package's templates, static files and migrations live.

In the repository they sit at the top level (the product card's layout); in an
installed wheel setup.cfg maps them into the package.  Look in the package
first so an installed copy never reads a stray checkout.
"""
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def asset_dir(name: str) -> str:
    """Return the directory holding the ``templates``, ``static`` or ``migrations`` assets."""
    packaged = PACKAGE_DIR / name
    if packaged.is_dir():
        return str(packaged)
    return str(PACKAGE_DIR.parent / name)
