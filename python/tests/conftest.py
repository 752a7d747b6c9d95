"""pytest setup for the gradzip Python package: imports the package built by CMake.

The package lives in <build>/python (cmake --build build --target gradzip_python);
scripts/test sets PYTHONPATH to it. Without PYTHONPATH, <repo>/build/python is used.
"""

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parent

try:
    import gradzip  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO / "build" / "python"))
    import gradzip  # noqa: F401


def package_env():
    """Environment for child interpreters: they must import the same gradzip package."""
    env = dict(os.environ)
    root = str(Path(gradzip.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, str(TESTS)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env
