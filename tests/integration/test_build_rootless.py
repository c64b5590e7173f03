"""`pypod build` as a regular user: FROM busybox + RUN + COPY, rootless (the pause process's
user namespace, no cgroups on this cgroup v1 host), as podman builds rootless."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rootless_support import (
    IMAGE,
    PYTHON,
    TMP,
    UserPypod,
    rootless_pypod,  # noqa: F401 - fixtures
    rootless_user,  # noqa: F401 - fixtures
)

pytestmark = [pytest.mark.root, pytest.mark.rootless]

CONTAINERFILE = f"""\
FROM {IMAGE}
RUN echo built > /built && id -u > /uid && grep -E '^Seccomp:' /proc/self/status > /seccomp \\
    && grep rootless /run/.containerenv > /rootless
COPY file.txt /copied.txt
RUN cat /copied.txt /built > /both && ls -n /copied.txt | cut -c1-10 > /mode
USER user
RUN id -u > /tmp/user-uid
USER root
RUN (echo lo-works | nc -l -p 47070 &) && sleep 0.2 && nc 127.0.0.1 47070 </dev/null > /lo
"""


@pytest.fixture
def context(rootless_pypod: UserPypod) -> Iterator[Path]:  # noqa: F811
    user = rootless_pypod.user
    with tempfile.TemporaryDirectory(prefix="pypod-rootless-build-", dir=TMP) as tmp:
        ctx = Path(tmp)
        (ctx / "Containerfile").write_text(CONTAINERFILE)
        (ctx / "file.txt").write_text("from the context\n")
        for path in (ctx, ctx / "Containerfile", ctx / "file.txt"):
            os.chown(path, user.uid, user.gid)
        yield ctx


def test_build_from_run_copy(rootless_pypod: UserPypod, context: Path) -> None:  # noqa: F811
    p = rootless_pypod
    out = p.ok("build", "-t", "localhost/rootless-built", str(context), timeout=180)
    assert "STEP 8/8" in out
    try:
        shown = p.ok(
            "run", "--rm", "--network", "none", "localhost/rootless-built",
            "cat", "/both", "/uid", "/seccomp", "/mode", "/tmp/user-uid", "/rootless", "/lo",
        )  # fmt: skip
        assert shown == (
            "from the context\nbuilt\n0\nSeccomp:\t2\n-rw-r--r--\n1000\nrootless=1\nlo-works\n"
        )
        # the RUN steps again (no cache) with a network namespace of their own: lo is up
        isolated = p.ok("build", "--no-cache", "--network", "none", "-q", str(context), timeout=180)
        assert len(isolated.strip().splitlines()[-1]) == 64
        # and with chroot isolation (the host's pid and ipc namespaces: /proc is bound)
        chrooted = p.ok(
            "build", "--no-cache", "--isolation", "chroot", "-q", str(context), timeout=180
        )
        assert len(chrooted.strip().splitlines()[-1]) == 64
    finally:
        p("rmi", "-f", "localhost/rootless-built")


PYPOD_BUILD_MAIN = "import sys; from pypod.cli.build.main import main; sys.exit(main())"


def test_pypod_build_from_run_copy_commit(rootless_pypod: UserPypod, context: Path) -> None:  # noqa: F811
    p = rootless_pypod
    user = p.user

    def pb(*args: str) -> str:
        proc = user.run([PYTHON, "-c", PYPOD_BUILD_MAIN, *args], env=p.env(), timeout=120)
        assert proc.returncode == 0, f"{args}: rc={proc.returncode}\n{proc.stderr}{proc.stdout}"
        return proc.stdout.strip()

    cid = pb("from", IMAGE)
    try:
        out = pb("run", cid, "--", "sh", "-c", "id -u; grep -E '^Seccomp:' /proc/self/status")
        assert out == "0\nSeccomp:\t2"
        assert pb("run", "--network", "none", cid, "--", "sh", "-c", "ip -o link | wc -l") == "1"
        pb("run", "--isolation", "chroot", cid, "--", "sh", "-c", "echo made > /made")
        pb("copy", cid, str(context / "file.txt"), "/copied.txt")
        pb("commit", "-q", cid, "localhost/pypod-build-rootless")
        shown = p.ok(
            "run", "--rm", "--network", "none", "localhost/pypod-build-rootless",
            "cat", "/made", "/copied.txt",
        )  # fmt: skip
        assert shown == "made\nfrom the context\n"
    finally:
        user.run([PYTHON, "-c", PYPOD_BUILD_MAIN, "rm", cid], env=p.env())
        p("rmi", "-f", "localhost/pypod-build-rootless")
