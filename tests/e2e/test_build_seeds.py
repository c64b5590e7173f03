"""The buildah workflows of two seed documents, typed as written, with pypod-build and pypod.

- shared/seeds/002 (Dan Walsh's "New Container Technologies"): `CID=$(buildah from fedora)`,
  `buildah mount $CID /mnt`, `buildah run $CID dnf install httpd`, `make install
  DESTDIR=/mnt`, `buildah commit $CID --entrypoint=/usr/bin/startup.sh`, `buildah
  build-using-dockerfile -f Dockerfile .`, `buildah bud -f Dockerfile .`.  There is no fedora
  (nor dnf, nor a registry to pull from) here: busybox stands in for it and a shell command for
  the package install.  Two lines are from an older buildah: 1.28 takes `/mnt` after the
  container as a second container name, and refuses `--entrypoint` after the container (its
  commit has no such flag); pypod-build answers as buildah 1.28 does, and the test then does
  what 1.28 needs (`mount` alone, `config --entrypoint` before `commit`).
- shared/seeds/003 (a container workshop): a Containerfile `FROM httpd:2.4` + `COPY
  index.html /usr/local/apache2/htdocs/`, `buildah bud -t my-apache:1.0 .`, `podman images`,
  `podman run -d --rm --name my-app -p PORT:80 my-apache` and the page fetched over
  loopback; then the script form (`from`, `copy`, `commit`, `rm`), `podman tag` and `podman
  push --tls-verify=false` to a local registry and its catalog.  The httpd:2.4 image is built
  here from busybox (`busybox httpd -f -p 80 -h /usr/local/apache2/htdocs` as its CMD).
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.build_cli_support import (  # noqa: F401  (fixtures)
    HEX64,
    Build,
    build_fixture,
    build_store_fixture,
)
from tests.engine_support import busybox_tar_fixture, wait_for  # noqa: F401  (fixture)

pytestmark = pytest.mark.root

PAGE = "<h1>I made a container at UUG</h1>\n"
HTDOCS = "/usr/local/apache2/htdocs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch_eventually(url: str) -> str:
    def attempt() -> str | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return None

    return wait_for(attempt, 15, f"{url} to answer")


# --- seed 002 -------------------------------------------------------------------------------
def test_seed_002_working_container_workflow(build: Build, tmp_path: Path) -> None:
    cid = build.ok("from", "localhost/busybox").strip()  # CID=$(buildah from fedora)
    assert cid == "busybox-working-container"

    # buildah mount $CID /mnt — 1.28: "/mnt" is a second container name
    p = build.fails(125, "mount", cid, "/mnt")
    mnt = p.stdout.split()[1]
    assert p.stdout == f"{cid} {mnt}\n"
    assert p.stderr == 'Error: reading build container "/mnt": container not known\n'
    assert build.ok("mount", cid) == f"{mnt}\n"  # the same mount, counted once more

    # buildah run $CID dnf install httpd — a package install stands in
    install = "mkdir -p /var/www/html && echo 'installed' > /var/www/html/index.html"
    assert build.ok("run", cid, "sh", "-c", install) == ""

    # make install DESTDIR=/mnt — a file installed into the mount point from the host
    src = tmp_path / "startup.sh"
    src.write_text('#!/bin/sh\necho "startup: $(cat /var/www/html/index.html)"\n')
    os.makedirs(f"{mnt}/usr/bin", exist_ok=True)
    os.system(f"install -m 755 {src} {mnt}/usr/bin/startup.sh")
    assert build.ok("run", cid, "/usr/bin/startup.sh") == "startup: installed\n"

    # buildah commit $CID --entrypoint=/usr/bin/startup.sh — refused as by buildah 1.28
    p = build.fails(125, "commit", cid, "--entrypoint=/usr/bin/startup.sh")
    assert p.stderr == ("Error: no options (--entrypoint=/usr/bin/startup.sh) can be specified "
                        "after the image or container name\n")  # fmt: skip
    # ... and what 1.28 takes instead
    build.ok("config", "--entrypoint", '["/usr/bin/startup.sh"]', "--cmd", "", cid)
    image_id = build.ok("commit", "-q", cid, "startup").strip()
    assert HEX64.fullmatch(image_id)
    build.ok("umount", cid)
    build.ok("umount", cid)
    assert build.ok("mount") == ""
    assert build.store.ok("run", "--rm", "startup") == "startup: installed\n"
    build.ok("rm", cid)

    # buildah build-using-dockerfile -f Dockerfile .   /   buildah bud -f Dockerfile .
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM localhost/startup\nRUN echo 'from a Dockerfile' > /var/www/html/index.html\n"
    )
    ids = []
    for verb in ("build-using-dockerfile", "bud"):
        proc = build(verb, "-f", "Dockerfile", ".", cwd=ctx)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[:2] == [
            "STEP 1/2: FROM localhost/startup",
            "STEP 2/2: RUN echo 'from a Dockerfile' > /var/www/html/index.html",
        ]
        assert lines[-2] == f"--> {lines[-1][:11]}" and HEX64.fullmatch(lines[-1])
        ids.append(lines[-1])
    assert ids[0] != ids[1]  # no layer cache by default (buildah's --layers=false)
    assert build.ok("containers", "-q") == ""  # the builds' working containers are gone
    out = build.store.ok("run", "--rm", ids[1])
    assert out == "startup: from a Dockerfile\n"


# --- seed 003 -------------------------------------------------------------------------------
@pytest.fixture(name="httpd")
def httpd_fixture(build: Build) -> Iterator[str]:
    """localhost/httpd:2.4, made from busybox: its httpd serving /usr/local/apache2/htdocs."""
    c = build.ok("from", "localhost/busybox").strip()
    build.ok("run", c, "mkdir", "-p", HTDOCS)
    build.ok("run", c, "sh", "-c", f"echo '<h1>It works!</h1>' > {HTDOCS}/index.html")
    build.ok("config", "--cmd", f'["busybox", "httpd", "-f", "-p", "80", "-h", "{HTDOCS}"]',
             "--port", "80", c)  # fmt: skip
    build.ok("commit", "-q", "--rm", c, "httpd:2.4")
    yield "httpd:2.4"
    build.store("rm", "-f", "-t", "0", "my-app", "my-script-app")


def test_seed_003_containerfile_and_script(build: Build, httpd: str, tmp_path: Path) -> None:
    pypod = build.store
    # mkdir container1; cd container1; vi index.html; vi Containerfile
    work = tmp_path / "container1"
    work.mkdir()
    (work / "index.html").write_text(PAGE)
    (work / "Containerfile").write_text(f"FROM httpd:2.4\nCOPY index.html {HTDOCS}/\n")

    # buildah bud -t my-apache:1.0 .
    proc = build("bud", "-t", "my-apache:1.0", ".", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("STEP 1/2: FROM httpd:2.4\nSTEP 2/2: COPY index.html "
                                  f"{HTDOCS}/\nCOMMIT my-apache:1.0\n")  # fmt: skip
    assert "Successfully tagged localhost/my-apache:1.0\n" in proc.stdout

    # podman images
    rows = [re.split(r"\s{2,}", line) for line in pypod.ok("images").splitlines()[1:]]
    assert ["localhost/my-apache", "1.0"] in [r[:2] for r in rows]

    # podman run -d --rm --name my-app -p YOUR-PORT:80 my-apache — as written the image has
    # no :latest tag, and with no search registries the short name cannot be pulled (podman
    # fails the same way); the workshop meant the tag it built
    p = pypod("run", "-d", "--rm", "--name", "my-app", "-p", f"{free_port()}:80", "my-apache")
    assert p.returncode == 125 and "my-apache" in p.stderr
    port = free_port()
    cid = pypod.ok("run", "-d", "--rm", "--name", "my-app", "-p", f"{port}:80",
                   "my-apache:1.0").strip()  # fmt: skip
    assert HEX64.fullmatch(cid)
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == PAGE
    pypod.ok("stop", "-t", "0", "my-app")
    wait_for(lambda: "my-app" not in pypod.ok("ps", "-a", "--format", "{{.Names}}"), 10,
             "my-app to be removed (--rm)")  # fmt: skip

    # the script version
    container = build.ok("from", "httpd:2.4", cwd=work).strip()  # container=$(buildah from ...)
    assert container == "httpd-working-container"
    digest = build.ok("copy", container, "index.html", f"{HTDOCS}/", cwd=work)
    assert re.fullmatch(r"[0-9a-f]{64}\n", digest)
    proc = build("commit", container, "buildah-apache", cwd=work)
    assert proc.returncode == 0 and HEX64.fullmatch(proc.stdout.strip()), proc.stderr
    full_id = build.ok("containers", "--format", "{{.ContainerID}}", "--filter",
                       f"name={container}").strip()  # fmt: skip
    assert build.ok("rm", container) == f"{full_id}\n"  # buildah rm $container
    port = free_port()
    pypod.ok("run", "-d", "--rm", "--name", "my-script-app", "-p", f"{port}:80",
             "buildah-apache")  # fmt: skip
    assert fetch_eventually(f"http://127.0.0.1:{port}/") == PAGE
    pypod.ok("stop", "-t", "0", "my-script-app")


def test_seed_003_tag_push_to_a_local_registry(build: Build, httpd: str, tmp_path: Path) -> None:
    from tests.image_support import start_registry

    (tmp_path / "registry").mkdir()
    registry = start_registry(tmp_path / "registry")
    try:
        pypod = build.store
        (tmp_path / "index.html").write_text(PAGE)
        container = build.ok("from", "httpd:2.4").strip()
        build.ok("copy", "-q", container, str(tmp_path / "index.html"), f"{HTDOCS}/")
        build.ok("commit", "-q", "--rm", container, "buildah-apache")
        # podman tag localhost/buildah-apache:latest localhost:5000/YOUR NAME/buildah-apache
        target = f"{registry.host}/yourname/buildah-apache:latest"
        pypod.ok("tag", "localhost/buildah-apache:latest", target)
        # podman push --tls-verify=false localhost:5000/YOUR NAME/buildah-apache:latest
        pypod.ok("push", "--tls-verify=false", target)
        # curl http://localhost:5000/v2/_catalog
        with urllib.request.urlopen(f"http://{registry.host}/v2/_catalog", timeout=5) as r:
            assert json.loads(r.read()) == {"repositories": ["yourname/buildah-apache"]}
        # and pypod-build pulls it back under its registry name
        pypod.ok("rmi", target)
        image_id = build.ok("pull", "-q", "--tls-verify=false", target).strip()
        assert HEX64.fullmatch(image_id)
        assert build.ok("images", "-q", target) == image_id[:12] + "\n"
    finally:
        registry.stop()
