"""podman-compose (PyPI), pointed at pypod with `--podman-path`: a web server and a client that
fetches from it by service name; `up`, `ps`, `logs`, `down`.

podman-compose puts services in a pod by default; pods are not there yet (issue 7), so the
project runs with `--in-pod=false`, which podman-compose offers for podman without pods.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine_support import (  # noqa: F401  (fixtures)
    IMAGE,
    Pypod,
    busybox_tar_fixture,
    pypod_fixture,
    pypod_session_fixture,
    wait_for,
)

pytestmark = pytest.mark.root

COMPOSE = f"""\
services:
  web:
    image: {IMAGE}
    command: ["httpd", "-f", "-p", "80", "-h", "/srv"]
    init: true
    volumes:
      - ./site:/srv:ro
  client:
    image: {IMAGE}
    command:
      - sh
      - -c
      - until wget -q -O - http://web/index.html; do sleep 0.2; done; sleep 1000
    depends_on:
      - web
    init: true
"""


def compose_bin() -> str:
    found = shutil.which("podman-compose", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("podman-compose is not installed (pip install podman-compose, see pyproject)")
    return found


def test_compose_up_ps_logs_down(pypod: Pypod, tmp_path: Path) -> None:
    project = tmp_path / "demo"
    (project / "site").mkdir(parents=True)
    (project / "site" / "index.html").write_text("served by web\n")
    (project / "compose.yaml").write_text(COMPOSE)
    wrapper = tmp_path / "pypod-wrapper"
    wrapper.write_text(f'#!/bin/sh\nexec {" ".join(pypod.argv)} "$@"\n')
    wrapper.chmod(0o755)

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [compose_bin(), "--podman-path", str(wrapper), "--in-pod=false", *args],
            cwd=project, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    try:
        up = compose("up", "-d")
        assert up.returncode == 0, up.stderr + up.stdout
        ps = compose("ps")
        assert ps.returncode == 0, ps.stderr
        assert "demo_web_1" in ps.stdout and "demo_client_1" in ps.stdout
        assert ps.stdout.count("Up ") == 2

        def fetched() -> bool:
            return "served by web" in compose("logs", "client").stdout

        wait_for(fetched, 20, "the client to fetch from web by its service name")
        assert "demo_default" in pypod.ok("network", "ls", "--format", "{{.Name}}")
    finally:
        down = compose("down")
    assert down.returncode == 0, down.stderr
    assert pypod.ok("ps", "-a", "--filter", "label=io.podman.compose.project=demo", "-q") == ""
    pypod("network", "rm", "demo_default")
