"""Where a result came from: the kit's git commit and the versions of the packages it ran with."""
from __future__ import annotations

import subprocess
from pathlib import Path

PACKAGES = ("tensorflow", "keras", "jax", "numpy", "pandas", "scikit-learn", "efficientnet", "albumentations")


def package_versions(names=PACKAGES) -> dict:
    """Return {package: version or None} for the packages a result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def git_commit() -> str | None:
    """Return the kit's git commit, or None outside a checkout (a Kaggle kernel's copy of src/)."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
        return result.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
