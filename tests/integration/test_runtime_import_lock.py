"""After pivot_root the init may not import anything: the container owns the files on sys.path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pypod.runtime.process.init import forbid_imports
from tests.conftest import CLI, BundleFactory

pytestmark = pytest.mark.root


def test_forbid_imports_refuses_modules_from_any_path(tmp_path: Path) -> None:
    (tmp_path / "planted_module.py").write_text("import os\nos._exit(42)\n")
    unloaded = [m for m in ("tabnanny", "mailbox", "wave", "sndhdr") if m not in sys.modules][:2]
    assert len(unloaded) == 2
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the check runs in a child: it changes the interpreter for good
        try:
            sys.path.insert(0, str(tmp_path))
            forbid_imports()
            results = []
            for name in ("planted_module", *unloaded):
                try:
                    __import__(name)
                    results.append(f"{name}:imported")
                except ImportError:
                    results.append(f"{name}:refused")
            import _imp  # noqa: F401 - built-in modules stay importable
            import errno  # noqa: F401 - already loaded: still usable

            os.write(write, " ".join(results).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    out = os.read(read, 4096).decode()
    assert os.waitstatus_to_exitcode(status) == 0
    assert out == " ".join(f"{m}:refused" for m in ("planted_module", *unloaded))


def test_a_planted_stdlib_module_is_never_run(rt: CLI, bundle: BundleFactory) -> None:
    """The image ships a 'logging' package where the host's Python would look after pivot_root;
    that code never runs (it would create a marker in the bundle).  A regression guard: it fails
    as soon as the init path imports logging lazily without the lock."""
    b = bundle(["true"])
    lib = b / "rootfs" / Path(os.__file__).parent.relative_to("/") / "logging"
    lib.mkdir(parents=True)
    marker = b / "pwned"
    (lib / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    assert rt("run", "-b", str(b), "c1").returncode == 0
    assert rt("--debug", "run", "-b", str(b), "c2").returncode == 0
    assert not marker.exists()
