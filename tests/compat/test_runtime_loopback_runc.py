"""A new network namespace gets its loopback interface up, in pypod-runtime as in runc 1.1.

runc brings `lo` up in a network namespace it creates (its "loopback" network strategy), so
127.0.0.1 works in `--network none` build steps and in bundles run without a namespace path.
"""

from __future__ import annotations

import pytest

from tests.compat.test_runc_compat import both
from tests.conftest import CLI, BundleFactory

pytestmark = [pytest.mark.root, pytest.mark.compat]


def test_new_network_namespace_has_loopback_up(rt: CLI, runc: CLI, bundle: BundleFactory) -> None:
    script = (
        "ip -o link | cut -d'>' -f1;"
        "(echo hi | nc -l -p 7070 &); sleep 0.2; nc 127.0.0.1 7070 </dev/null"
    )
    b = bundle(["sh", "-c", script])  # runc's default spec: a network namespace, no path
    ours, theirs = both(rt, runc, b)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout
    assert ours.stdout.split() == ["1:", "lo:", "<LOOPBACK,UP,LOWER_UP", "hi"]
