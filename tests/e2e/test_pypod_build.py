"""`pypod build` / `pypod image build` as users type them (a store of the module's own with
localhost/busybox): output, exit codes, stdin Containerfiles, reproducible builds, images that
run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.build_support import ctx_fixture, pp_fixture  # noqa: F401  (fixtures)
from tests.engine_support import IMAGE, Pypod, busybox_tar_fixture  # noqa: F401  (fixture)

pytestmark = [pytest.mark.root]


def write(ctx: Path, containerfile: str, **files: str) -> None:
    (ctx / "Containerfile").write_text(containerfile)
    for name, content in files.items():
        (ctx / name).write_text(content)


def builders(pp: Pypod) -> list[str]:
    from pypod.build.builder import list_builders
    from pypod.storage.store import Store

    with Store.open(str(pp.root), str(pp.runroot), "overlay") as store:
        return [b.name for b in list_builders(store)]


def test_build_tag_and_run(pp: Pypod, ctx: Path) -> None:
    write(ctx, f'FROM {IMAGE}\nCOPY hello /hello\nRUN echo built\nCMD ["cat", "/hello"]\n',
          hello="hello from the image\n")  # fmt: skip
    out = pp.ok("build", "-t", "e2e-hello", str(ctx))
    lines = out.splitlines()
    assert lines[0] == f"STEP 1/4: FROM {IMAGE}"
    assert lines[1] == "STEP 2/4: COPY hello /hello"
    assert re.fullmatch(r"--> [0-9a-f]{11}", lines[2])
    assert lines[3:5] == ["STEP 3/4: RUN echo built", "built"]
    assert lines[-4:-3] == ["COMMIT e2e-hello"]
    assert lines[-2] == "Successfully tagged localhost/e2e-hello:latest"
    image_id = lines[-1]
    assert re.fullmatch(r"[0-9a-f]{64}", image_id) and lines[-3] == f"--> {image_id[:11]}"
    assert pp.ok("run", "--rm", "e2e-hello") == "hello from the image\n"
    history = pp.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}", "e2e-hello")
    assert history.splitlines()[:2] == ['/bin/sh -c #(nop) CMD ["cat", "/hello"]',
                                        "/bin/sh -c echo built"]  # fmt: skip
    # again: every step from the cache, the same image
    out = pp.ok("build", "-t", "e2e-hello", str(ctx))
    assert out.count("--> Using cache") == 3 and out.splitlines()[-1] == image_id
    assert pp.ok("build", "-q", "-t", "e2e-hello", str(ctx)) == image_id + "\n"


def test_failing_run_exits_with_its_status(pp: Pypod, ctx: Path) -> None:
    write(ctx, f"FROM {IMAGE}\nRUN echo partial > /p\nRUN false\n")
    proc = pp("build", "-t", "e2e-broken", str(ctx))
    assert proc.returncode == 1
    assert (
        proc.stderr == 'Error: building at STEP "RUN false": while running runtime: exit status 1\n'
    )
    assert "STEP 3/3: RUN false" in proc.stdout
    write(ctx, f"FROM {IMAGE}\nRUN exit 7\n")
    assert pp("build", str(ctx)).returncode == 7
    assert "e2e-broken" not in pp.ok("images")
    assert builders(pp) == []
    assert pp.ok("ps", "-a", "-q") == ""


def test_errors_exit_125(pp: Pypod, ctx: Path) -> None:
    write(ctx, f"FROM {IMAGE}\nCOPY missing /x\n")
    err = pp.fails(125, "build", str(ctx))
    assert err.startswith('Error: building at STEP "COPY missing /x": checking on sources under')
    assert '"/missing": no such file or directory' in err
    write(ctx, f"FROM {IMAGE}\nRUN true\nBOGUS x\n")
    err = pp.fails(125, "build", str(ctx))
    assert err == f"Error: {ctx}/Containerfile:3: unknown instruction: BOGUS\n"
    assert builders(pp) == []


def test_containerfile_from_stdin_and_image_build(pp: Pypod, ctx: Path, tmp_path: Path) -> None:
    iid = tmp_path / "iid"
    proc = pp("image", "build", "-f", "-", "--layers=false", "--iidfile", str(iid),
              "--build-arg", "WHO=stdin", "--build-arg", "NOBODY=x", "-t", "e2e-stdin", str(ctx),
              input=f"FROM {IMAGE}\nARG WHO\nRUN echo $WHO > /who\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    image_id = out.splitlines()[-1]
    assert out.splitlines()[-3:-1] == [
        "[Warning] one or more build args were not consumed: [NOBODY]",
        "Successfully tagged localhost/e2e-stdin:latest",
    ]
    assert iid.read_text() == f"sha256:{image_id}"
    assert pp.ok("run", "--rm", "e2e-stdin", "cat", "/who") == "stdin\n"
    # one commit, its progress on stderr as buildah's
    assert proc.stderr.startswith("Getting image source signatures\n")


def test_source_date_epoch_gives_the_same_digest(pp: Pypod, ctx: Path) -> None:
    write(ctx, f"FROM {IMAGE}\nCOPY f /f\nRUN echo x > /x\nENV A=1\n", f="data\n")
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    ids = []
    for _ in range(2):
        proc = pp("build", "--no-cache", "-q", str(ctx), env=env)
        assert proc.returncode == 0, proc.stderr
        ids.append(proc.stdout.strip())
    assert ids[0] == ids[1]
    proc = pp("build", "--no-cache", "-q", "--timestamp", "1700000000", str(ctx))
    assert proc.stdout.strip() == ids[0]
    created = pp.ok("image", "inspect", "--format", "{{.Created}}", ids[0])
    assert re.match(r"2023-11-14[ T]22:13:20", created)


def test_multi_stage_target_and_labels(pp: Pypod, ctx: Path) -> None:
    write(ctx, f"FROM {IMAGE} AS build\nRUN echo artifact > /out\n"
               f"FROM {IMAGE} AS unused\nRUN false\n"
               "FROM scratch\nCOPY --from=build /out /out\n")  # fmt: skip
    out = pp.ok("build", "--label", "org.example=yes", "-t", "e2e-ms", str(ctx))
    assert "unused" not in out and "[3/3] COMMIT e2e-ms" in out
    labels = pp.ok("image", "inspect", "--format", "{{.Labels}}", "e2e-ms")
    assert "org.example:yes" in labels
    out = pp.ok("build", "--target", "build", "-q", str(ctx))
    assert re.fullmatch(r"[0-9a-f]{64}\n", out)


def test_platform_of_another_host_is_refused(pp: Pypod, ctx: Path) -> None:
    write(ctx, f"FROM {IMAGE}\n")
    err = pp.fails(125, "build", "--platform", "linux/s390x", str(ctx))
    assert "not supported yet" in err


def test_quiet_keeps_run_errors_on_stderr(pp: Pypod, ctx: Path) -> None:
    write(ctx, f"FROM {IMAGE}\nRUN echo visible; echo to-stderr >&2\n")
    proc = pp("build", "-q", "--no-cache", str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n", proc.stdout)
    assert proc.stderr == "to-stderr\n"
    proc = pp("build", "--no-cache", str(ctx))
    assert "visible\n" in proc.stdout and proc.stderr == "to-stderr\n"


@pytest.mark.registry
def test_from_pulls_from_a_registry(pp: Pypod, ctx: Path, tmp_path: Path) -> None:
    from tests.image_support import start_registry

    (tmp_path / "registry").mkdir()
    registry = start_registry(tmp_path / "registry")
    try:
        remote = f"{registry.host}/build/busybox:1"
        pp.ok("push", "--tls-verify=false", IMAGE, f"docker://{remote}")
        write(ctx, f"FROM {remote}\nRUN echo pulled > /p\n")
        err = pp.fails(125, "build", "--pull=never", str(ctx))
        assert f'building at STEP "FROM {remote}"' in err
        proc = pp("build", "--tls-verify=false", "-t", "e2e-pulled", str(ctx))
        assert proc.returncode == 0, proc.stderr
        assert "Copying blob" in proc.stderr  # the pull's progress, as podman: on stderr
        assert pp.ok("run", "--rm", "e2e-pulled", "cat", "/p") == "pulled\n"
        # --pull=always: pulled again (the registry is asked), the cache still used
        proc = pp("build", "--pull=always", "--tls-verify=false", str(ctx))
        assert proc.returncode == 0, proc.stderr
        assert "--> Using cache" in proc.stdout
    finally:
        registry.stop()


def test_annotations_go_into_the_manifest(pp: Pypod, ctx: Path) -> None:
    """`--annotation K=V` (podman's): in the final image's OCI manifest, with buildah's base
    annotations; also when every step could come from the layer cache."""
    import json

    write(ctx, f"FROM {IMAGE}\nRUN echo a > /a\n")
    pp.ok("build", "-q", "-t", "e2e-plain", str(ctx))
    for _ in range(2):  # the second time RUN is in the cache: the annotation still counts
        image_id = pp.ok("build", "-q", "--annotation", "org.example.k=v", "--annotation",
                         "b=", "-t", "e2e-ann", str(ctx)).strip()  # fmt: skip
        doc = json.loads(pp.ok("image", "inspect", image_id))[0]
        base = json.loads(pp.ok("image", "inspect", IMAGE))[0]
        assert doc["Annotations"] == {
            "b": "",
            "org.example.k": "v",
            "org.opencontainers.image.base.digest": base["Digest"],
            "org.opencontainers.image.base.name": f"{IMAGE}:latest",
        }
    assert "org.example.k" not in json.loads(pp.ok("image", "inspect", "e2e-plain"))[0][
        "Annotations"]  # fmt: skip
    # Docker's format has no annotations (dropped, as buildah)
    image_id = pp.ok("build", "-q", "--format", "docker", "--annotation", "k=v",
                     str(ctx)).strip()  # fmt: skip
    assert not json.loads(pp.ok("image", "inspect", image_id))[0]["Annotations"]
    err = pp.fails(125, "build", "-q", "--annotation", "=v", str(ctx))
    assert "--annotation '=v': the name is empty" in err
