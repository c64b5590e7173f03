"""build.executor: Containerfile builds on a real store (busybox base), as root.

Each test builds in a store of its own (module-scoped, the busybox image imported as
`localhost/busybox`) and looks at what a user sees: the output lines, the image's config and
history, the files of the image, the errors, and what is left in the store afterwards.
"""

from __future__ import annotations

import io
import os
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypod.build.builder import Builder, FromOptions, list_builders
from pypod.build.containerfile import ContainerfileError
from pypod.build.executor import BuildError, BuildOptions, build
from pypod.errors import ImageNotFound, InvalidArgument, NotSupported
from pypod.image.local import find_image, image_config
from pypod.storage.store import Store
from tests.build_support import pp_fixture  # noqa: F401  (fixture)
from tests.engine_support import IMAGE, Pypod, busybox_tar_fixture  # noqa: F401  (fixture)

pytestmark = [pytest.mark.root]


@pytest.fixture
def store(pp: Pypod) -> Iterator[Store]:
    s = Store.open(str(pp.root), str(pp.runroot), "overlay")
    try:
        yield s
        assert not list_builders(s), "working containers left behind"
    finally:
        s.close()


class Ctx:
    def __init__(self, store: Store, path: Path) -> None:
        self.store = store
        self.path = path
        self.err = io.StringIO()

    def write(self, files: dict[str, str]) -> None:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(content).lstrip("\n"))

    def build(self, containerfile: str | None = None, **kw: Any) -> tuple[str, str]:
        """(image id, output)."""
        if containerfile is not None:
            self.write({"Containerfile": containerfile})
        out = io.StringIO()
        self.err = io.StringIO()
        kw.setdefault("force_rm", True)
        kw.setdefault("err", self.err)
        files = kw.pop("containerfiles", ())
        options = BuildOptions(containerfiles=files, context_dir=str(self.path), out=out, **kw)
        image_id = build(self.store, options)
        text = out.getvalue()
        assert text.rstrip("\n").splitlines()[-1] == image_id
        return image_id, text

    def config(self, image_id: str) -> dict[str, Any]:
        return image_config(self.store, self.store.image(image_id))

    def files(self, image_id: str) -> dict[str, Any]:
        """path -> (kind, mode, uid, gid, content or link target) of the image's files."""
        builder = Builder.new(self.store, image_id, FromOptions(pull="never"))
        try:
            root = builder.mount()
            out: dict[str, Any] = {}
            for dirpath, dirnames, filenames in os.walk(root):
                for name in dirnames + filenames:
                    full = os.path.join(dirpath, name)
                    rel = "/" + os.path.relpath(full, root)
                    st = os.lstat(full)
                    if os.path.islink(full):
                        out[rel] = ("link", os.readlink(full))
                    elif os.path.isdir(full):
                        out[rel] = ("dir", oct(st.st_mode & 0o7777), st.st_uid, st.st_gid)
                    else:
                        with open(full, "rb") as f:
                            data = f.read()
                        out[rel] = ("file", oct(st.st_mode & 0o7777), st.st_uid, st.st_gid,
                                    data if len(data) < 200 else len(data))  # fmt: skip
            builder.unmount()
            return out
        finally:
            builder.remove()


@pytest.fixture
def ctx(store: Store, tmp_path: Path) -> Ctx:
    d = tmp_path / "ctx"
    d.mkdir()
    return Ctx(store, d)


def history(c: Ctx, image_id: str, base: str = IMAGE) -> list[tuple[str, bool, str]]:
    """The history entries the build added: (created_by, empty_layer, comment)."""
    skip = len(c.config(find_image(c.store, base).id).get("history") or [])
    return [(h.get("created_by", ""), bool(h.get("empty_layer")), h.get("comment", ""))
            for h in c.config(image_id)["history"][skip:]]  # fmt: skip


EVERY_INSTRUCTION = f"""
    ARG BASE={IMAGE}
    FROM $BASE AS first
    ARG X=1
    ENV A=b C="d e"
    RUN echo hi $X > /run.txt
    COPY f.txt /f
    COPY d /dd/
    ADD f.txt d/a /multi/
    WORKDIR /w
    USER 1:1
    EXPOSE 80 90/udp
    LABEL k=v "sp ace"=x
    VOLUME /v
    STOPSIGNAL SIGTERM
    HEALTHCHECK --interval=5s CMD true
    SHELL ["/bin/sh", "-c"]
    MAINTAINER me
    ONBUILD RUN echo trig
    ENTRYPOINT ["/bin/sh"]
    CMD echo hi
    """


def test_every_instruction_layers(ctx: Ctx) -> None:
    ctx.write({"f.txt": "hello\n", "d/a": "x\n"})
    image_id, out = ctx.build(EVERY_INSTRUCTION, tags=("t1",), build_args={"X": "2"},
                              format="docker")  # fmt: skip
    lines = out.splitlines()
    assert lines[0] == f"STEP 1/19: FROM {IMAGE} AS first"
    assert lines[1] == "STEP 2/19: ARG X=1"
    assert lines[lines.index("STEP 4/19: RUN echo hi $X > /run.txt") + 1].startswith("--> ")
    assert lines[-5:-3] == ["STEP 19/19: CMD echo hi", "COMMIT t1"]
    assert lines[-3] == f"--> {image_id[:11]}"
    assert lines[-2] == "Successfully tagged localhost/t1:latest"
    assert find_image(ctx.store, "t1").id == image_id
    doc = ctx.config(image_id)
    cfg = doc["config"]
    assert cfg["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          "A=b", "C=d e"]  # fmt: skip
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert cfg["Entrypoint"] == ["/bin/sh"]
    assert cfg["WorkingDir"] == "/w" and cfg["User"] == "1:1"
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "90/udp": {}}
    assert cfg["Labels"] == {"k": "v", "sp ace": "x"}
    assert cfg["Volumes"] == {"/v": {}} and cfg["StopSignal"] == "SIGTERM"
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000}
    assert cfg["Shell"] == ["/bin/sh", "-c"] and cfg["OnBuild"] == ["RUN echo trig"]
    assert doc["author"] == "me"
    added = history(ctx, image_id)
    texts = [h[0] for h in added]
    assert texts[0] == "/bin/sh -c #(nop) ARG X"
    assert texts[2] == "|1 X=2 /bin/sh -c echo hi $X > /run.txt"
    assert texts[3].startswith("/bin/sh -c #(nop) COPY file:") and texts[3].endswith(" in /f ")
    assert texts[4].startswith("/bin/sh -c #(nop) COPY dir:")
    assert texts[5].startswith("/bin/sh -c #(nop) ADD multi:")
    assert texts[-1] == "/bin/sh -c #(nop) CMD echo hi"
    assert [h[1] for h in added] == [True, True, False, False, False, False] + [True] * 12
    assert added[0][2] == f"FROM {IMAGE}:latest"
    assert all(h[2].startswith("FROM ") and len(h[2]) == 17 for h in added[1:])
    files = ctx.files(image_id)
    assert files["/run.txt"][4] == b"hi 2\n"
    assert files["/f"][4] == b"hello\n" and files["/dd/a"][4] == b"x\n"
    assert files["/multi/f.txt"][4] == b"hello\n" and files["/multi/a"][4] == b"x\n"
    # with layers a WORKDIR step is an empty layer: the directory is not kept (as buildah)
    assert "/w" not in files

    # the second build takes every step from the cache and gives the same image
    again, out = ctx.build(tags=("t1",), build_args={"X": "2"}, format="docker")
    assert again == image_id
    assert out.count("--> Using cache ") == 18
    assert f"--> Using cache {image_id}\nCOMMIT t1\n--> {image_id[:11]}\n" in out
    # another build arg value: the RUN step misses the cache from there on
    other, out = ctx.build(tags=("t2",), build_args={"X": "3"}, format="docker")
    assert other != image_id and out.count("--> Using cache ") == 2
    assert ctx.files(other)["/run.txt"][4] == b"hi 3\n"
    # --no-cache: nothing taken from the cache
    fresh, out = ctx.build(tags=("t1",), build_args={"X": "2"}, format="docker", no_cache=True)
    assert fresh != image_id and "Using cache" not in out


def test_every_instruction_without_layers(ctx: Ctx) -> None:
    ctx.write({"f.txt": "hello\n", "d/a": "x\n"})
    image_id, out = ctx.build(EVERY_INSTRUCTION, layers=False)
    assert "-->" not in out.split("COMMIT")[0]
    assert out.splitlines()[-3:-1] == ["COMMIT", f"--> {image_id[:11]}"]
    doc = ctx.config(image_id)
    base = ctx.config(find_image(ctx.store, IMAGE).id)
    assert len(doc["rootfs"]["diff_ids"]) == len(base["rootfs"]["diff_ids"]) + 1
    added = history(ctx, image_id)
    assert [h[1] for h in added] == [True] * 17 + [False]
    assert added[-1] == ("/bin/sh -c #(nop) CMD echo hi", False, f"FROM {IMAGE}:latest")
    assert added[2][0] == "|1 X=1 /bin/sh -c echo hi $X > /run.txt"
    # OCI format: the docker-only fields are dropped
    assert "Healthcheck" not in doc["config"] and "Shell" not in doc["config"]
    files = ctx.files(image_id)
    assert files["/w"][:2] == ("dir", "0o755")  # one container: WORKDIR's directory stays
    assert files["/run.txt"][4] == b"hi 1\n"


def test_multi_stage(ctx: Ctx) -> None:
    ctx.write({"a": "a\n"})
    image_id, out = ctx.build(f"""
        FROM {IMAGE} AS unused
        RUN echo unused
        FROM {IMAGE} AS one
        ARG Y=3
        RUN echo one $Y > /one
        FROM one AS two
        RUN echo two > /two
        FROM scratch
        COPY --from=two /one /two /
        COPY --from=1 /one /again
        COPY a /a
        """)  # fmt: skip
    assert "unused" not in out
    assert out.splitlines()[0] == f"[2/4] STEP 1/3: FROM {IMAGE} AS one"
    # an earlier stage is shown by its image's ID
    assert re.search(r"^\[3/4\] STEP 1/2: FROM [0-9a-f]{64} AS two$", out, re.M)
    assert "[4/4] COMMIT" in out
    files = ctx.files(image_id)
    assert files == {
        "/one": ("file", "0o644", 0, 0, b"one 3\n"),
        "/two": ("file", "0o644", 0, 0, b"two\n"),
        "/again": ("file", "0o644", 0, 0, b"one 3\n"),
        "/a": ("file", "0o644", 0, 0, b"a\n"),
    }
    # --target: the build stops at that stage
    target_id, out = ctx.build(target="one", layers=False)
    assert "[3/4]" not in out and "[2/2] COMMIT" in out  # stages up to the target
    assert ctx.files(target_id)["/one"][4] == b"one 3\n"


def test_arg_scoping(ctx: Ctx) -> None:
    image_id, _ = ctx.build(f"""
        ARG IMG={IMAGE}
        ARG HEAD=heading
        FROM $IMG
        ARG HEAD
        ARG LOCAL=${{HEAD}}-local
        ARG UNSET
        ENV E=$LOCAL U=${{UNSET:-none}} IMG=$IMG
        RUN echo "$HEAD $LOCAL $UNSET" > /args
        """, build_args={"UNSET": "given", "NOTDECLARED": "x"}, layers=False)  # fmt: skip
    env = ctx.config(image_id)["config"]["Env"]
    assert env[1:] == ["E=heading-local", "U=given", "IMG="]
    assert ctx.files(image_id)["/args"][4] == b"heading heading-local given\n"
    created = [h[0] for h in history(ctx, image_id)]
    assert created[-1] == (
        "|3 HEAD=heading LOCAL=heading-local UNSET=given /bin/sh -c "
        'echo "$HEAD $LOCAL $UNSET" > /args'
    )


def test_run_forms_shell_heredoc_network(ctx: Ctx) -> None:
    image_id, out = ctx.build(f"""
        FROM {IMAGE}
        RUN ["/bin/sh", "-c", "echo exec > /exec"]
        SHELL ["/bin/sh", "-xc"]
        RUN echo shell > /shell
        RUN <<EOF
        echo one > /heredoc
        echo two >> /heredoc
        EOF
        RUN cat <<A > /inline
        line $HOME
        A
        RUN --network=none ip link show | grep -c ': <' > /links || true
        COPY <<EOF /copied
        from a heredoc
        EOF
        """, layers=False)  # fmt: skip
    files = ctx.files(image_id)
    assert files["/exec"][4] == b"exec\n"
    assert files["/shell"][4] == b"shell\n"
    assert "+ echo shell" in ctx.err.getvalue()  # the SHELL's -x, on stderr
    assert files["/heredoc"][4] == b"one\ntwo\n"
    assert files["/inline"][4] == b"line /root\n"
    assert files["/links"][4] == b"1\n"  # loopback only
    assert files["/copied"][4] == b"from a heredoc\n"


def test_copy_chown_chmod_ignore_and_workdir(ctx: Ctx) -> None:
    ctx.write({"a.txt": "a\n", "b.log": "b\n", "sub/c.txt": "c\n", ".containerignore": "*.log\n"})
    image_id, _ = ctx.build(f"""
        FROM {IMAGE}
        WORKDIR /app
        COPY --chown=1:2 --chmod=0600 a.txt ./
        COPY . /all/
        COPY --chown=user sub rel/
        """, layers=False)  # fmt: skip
    files = ctx.files(image_id)
    assert files["/app/a.txt"] == ("file", "0o600", 1, 2, b"a\n")
    assert "/all/b.log" not in files and files["/all/sub/c.txt"][4] == b"c\n"
    assert files["/app/rel/c.txt"] == ("file", "0o644", 1000, 1000, b"c\n")


def test_entrypoint_clears_inherited_cmd(ctx: Ctx) -> None:
    base_id, _ = ctx.build(f'FROM {IMAGE}\nCMD ["base"]\n', layers=False)
    image_id, _ = ctx.build(f'FROM {base_id}\nENTRYPOINT ["/bin/echo"]\n', layers=False)
    cfg = ctx.config(image_id)["config"]
    assert cfg["Entrypoint"] == ["/bin/echo"] and "Cmd" not in cfg


def test_onbuild_triggers_run_in_the_next_build(ctx: Ctx) -> None:
    ctx.write({"t.txt": "trigger\n"})
    ctx.build(f"""
        FROM {IMAGE}
        ONBUILD COPY t.txt /from-trigger
        ONBUILD RUN echo ran > /ran
        """, tags=("onbuild-base",), format="docker")  # fmt: skip
    image_id, _ = ctx.build("FROM onbuild-base\nRUN cat /ran\n", format="docker")
    files = ctx.files(image_id)
    assert files["/from-trigger"][4] == b"trigger\n" and files["/ran"][4] == b"ran\n"
    assert "OnBuild" not in ctx.config(image_id)["config"] or not ctx.config(image_id)[
        "config"
    ].get("OnBuild")


def test_timestamp_gives_the_same_image_twice(ctx: Ctx) -> None:
    ctx.write({"f": "content\n"})
    cf = f"FROM {IMAGE}\nRUN echo made > /made\nCOPY f /f\nENV A=1\n"
    ids = [ctx.build(cf, timestamp=1_000_000_000, no_cache=True)[0] for _ in range(2)]
    assert ids[0] == ids[1]
    ids = [ctx.build(cf, timestamp=1_000_000_000, layers=False)[0] for _ in range(2)]
    assert ids[0] == ids[1]
    doc = ctx.config(ids[0])
    assert doc["created"] == "2001-09-09T01:46:40Z"
    files = ctx.files(ids[0])
    assert files["/made"][4] == b"made\n"


def test_squash_and_squash_all(ctx: Ctx) -> None:
    cf = f"FROM {IMAGE}\nRUN echo 1 > /1\nRUN echo 2 > /2\n"
    base_layers = len(ctx.config(find_image(ctx.store, IMAGE).id)["rootfs"]["diff_ids"])
    squashed, _ = ctx.build(cf, squash=True)
    assert len(ctx.config(squashed)["rootfs"]["diff_ids"]) == base_layers + 1
    everything, _ = ctx.build(cf, squash_all=True)
    assert len(ctx.config(everything)["rootfs"]["diff_ids"]) == 1
    files = ctx.files(everything)
    assert files["/1"][4] == b"1\n" and files["/2"][4] == b"2\n" and "/bin/busybox" in files


def test_iidfile_quiet_and_several_tags(ctx: Ctx, tmp_path: Path) -> None:
    iid = tmp_path / "iid"
    image_id, out = ctx.build(f"FROM {IMAGE}\nRUN echo not shown\n", quiet=True,
                              iidfile=str(iid), tags=("q1", "q2:v"))  # fmt: skip
    assert out == image_id + "\n"
    assert iid.read_text() == f"sha256:{image_id}"
    assert set(ctx.store.image(image_id).names) == {"localhost/q1:latest", "localhost/q2:v"}


def test_failing_run_leaves_nothing(ctx: Ctx) -> None:
    before = {i.id for i in ctx.store.images()}
    with pytest.raises(BuildError) as err:
        ctx.build(f"FROM {IMAGE}\nRUN echo half > /x\nRUN sh -c 'exit 3'\n", tags=("broken",),
                  layers=False)  # fmt: skip
    assert str(err.value) == (
        "building at STEP \"RUN sh -c 'exit 3'\": while running runtime: exit status 3"
    )
    assert err.value.engine_exit_code == 3
    assert {i.id for i in ctx.store.images()} == before
    with pytest.raises(ImageNotFound):
        find_image(ctx.store, "broken")
    assert not list_builders(ctx.store)


def test_errors_name_the_step_or_line(ctx: Ctx) -> None:
    with pytest.raises(BuildError, match=r'building at STEP "COPY nothere /x": .*"/nothere"'):
        ctx.build(f"FROM {IMAGE}\nCOPY nothere /x\n")
    with pytest.raises(ContainerfileError, match=r"/Containerfile:2: unknown instruction: FOO$"):
        ctx.build(f"FROM {IMAGE}\nFOO bar\n")
    with pytest.raises(NotSupported, match="platform"):
        ctx.build("FROM --platform=linux/s390x busybox\n")
    with pytest.raises(BuildError, match=r'building at STEP "FROM nothere-image": .*'):
        ctx.build("FROM nothere-image\n", pull="never")
    with pytest.raises(InvalidArgument, match="no Containerfile or Dockerfile"):
        build(ctx.store, BuildOptions(containerfiles=(), context_dir=str(ctx.path / "..")))
    assert not list_builders(ctx.store)


def test_several_containerfiles_and_dockerfile_name(ctx: Ctx) -> None:
    ctx.write({"Dockerfile": f"FROM {IMAGE}\nENV A=1\n", "more": "ENV B=2\n"})
    image_id, _ = ctx.build(layers=False)
    assert ctx.config(image_id)["config"]["Env"][1:] == ["A=1"]
    both, _ = ctx.build(containerfiles=(str(ctx.path / "Dockerfile"), "more"), layers=False)
    assert ctx.config(both)["config"]["Env"][1:] == ["A=1", "B=2"]


def test_labels_and_from_scratch(ctx: Ctx) -> None:
    ctx.write({"x": "x"})
    image_id, _ = ctx.build("FROM scratch\nCOPY x /x\n", labels=("a=1", "b="))
    doc = ctx.config(image_id)
    assert doc["config"]["Labels"] == {"a": "1", "b": ""}
    assert len(doc["rootfs"]["diff_ids"]) == 1
    assert ctx.files(image_id) == {"/x": ("file", "0o644", 0, 0, b"x")}


def test_copy_from_an_image_and_mount_from_a_stage(ctx: Ctx) -> None:
    image_id, _ = ctx.build(f"""
        FROM {IMAGE} AS tools
        RUN echo tool > /tool
        FROM scratch
        COPY --from={IMAGE} /etc/passwd /passwd
        FROM {IMAGE}
        RUN --mount=type=bind,from=tools,source=/tool,target=/mnt/tool cat /mnt/tool > /seen
        COPY --from=1 /passwd /passwd-copy
        """, layers=False)  # fmt: skip
    files = ctx.files(image_id)
    assert files["/seen"][4] == b"tool\n"
    assert files["/passwd-copy"][4].startswith(b"root:x:0:0:")
    assert "/mnt/tool" not in files


def test_from_alone_with_layers_is_the_base_image(ctx: Ctx) -> None:
    image_id, out = ctx.build(f"FROM {IMAGE}\n", tags=("same-as-base",))
    assert image_id == find_image(ctx.store, IMAGE).id
    assert out.splitlines()[:3] == [f"STEP 1/1: FROM {IMAGE}", "COMMIT same-as-base",
                                    f"--> {image_id[:11]}"]  # fmt: skip


def test_cache_follows_content_and_format(ctx: Ctx) -> None:
    ctx.write({"f": "one\n"})
    cf = f"FROM {IMAGE}\nCOPY f /f\nRUN cat /f > /g\n"
    first, _ = ctx.build(cf)
    again, out = ctx.build(cf)
    assert again == first and out.count("--> Using cache") == 2
    ctx.write({"f": "two\n"})  # new content: COPY and what follows are done again
    changed, out = ctx.build(cf)
    assert changed != first and "Using cache" not in out
    assert ctx.files(changed)["/g"][4] == b"two\n"
    # a docker-format build does not take the OCI images from the cache (nor the reverse)
    docker, out = ctx.build(cf, format="docker")
    assert "Using cache" not in out
    manifest_type = ctx.store.image(docker).manifest_media_type
    assert "docker" in manifest_type
    again, out = ctx.build(cf, format="docker")
    assert again == docker and out.count("--> Using cache") == 2


def test_secrets_and_volumes_reach_run_only(ctx: Ctx, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("from the host\n")
    containerfile = f"""
        FROM {IMAGE}
        RUN --mount=type=secret,id=token cat /run/secrets/token > /seen-secret
        RUN cat /shared/in > /seen-volume
        """
    image_id, _ = ctx.build(containerfile, secrets={"token": str(secret)},
                            volumes=(f"{shared}:/shared",), layers=False)  # fmt: skip
    files = ctx.files(image_id)
    assert files["/seen-secret"][4] == b"s3cret"
    assert files["/seen-volume"][4] == b"from the host\n"
    assert "/run/secrets/token" not in files and "/shared/in" not in files


def test_add_a_url_and_an_archive(ctx: Ctx, tmp_path: Path) -> None:
    import http.server
    import tarfile
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "page.txt").write_text("from http\n")
    with tarfile.open(ctx.path / "a.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("inside/x")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"x\n"))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, directory=str(served), **kw)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/page.txt"
        image_id, _ = ctx.build(f"FROM {IMAGE}\nADD {url} /web/\nADD a.tar.gz /unpacked/\n",
                                layers=False)  # fmt: skip
    finally:
        server.shutdown()
        thread.join()
    files = ctx.files(image_id)
    assert files["/web/page.txt"][4] == b"from http\n"
    assert files["/unpacked/inside/x"][4] == b"x\n"


def test_rm_false_keeps_the_working_containers(ctx: Ctx) -> None:
    cf = f"FROM {IMAGE}\nRUN echo 1 > /1\nENV A=1\n"
    ctx.build(cf, layers=False, rm=False)
    kept = list_builders(ctx.store)
    try:
        assert len(kept) == 1 and kept[0].from_image == f"{IMAGE}:latest"
    finally:
        for b in kept:
            b.remove()
    # a failed build keeps them only without force_rm
    with pytest.raises(BuildError):
        ctx.build(f"FROM {IMAGE}\nRUN false\n", layers=False, force_rm=False)
    kept = list_builders(ctx.store)
    try:
        assert len(kept) == 1
    finally:
        for b in kept:
            b.remove()


def test_label_flags_win_over_label_instructions(ctx: Ctx) -> None:
    cf = f"FROM {IMAGE} AS first\nLABEL a=file b=file\nFROM {IMAGE}\nLABEL a=file2 c=file\n"
    for layers in (True, False):
        image_id, _ = ctx.build(cf, labels=("a=flag",), layers=layers)
        assert ctx.config(image_id)["config"]["Labels"] == {"a": "flag", "c": "file"}
