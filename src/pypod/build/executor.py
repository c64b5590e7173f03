"""Containerfile builds (`pypod build`, `pypod-build bud`): stages, steps, layer cache, output.

`build(store, BuildOptions)` reads the Containerfile(s), plans the stages (`stages.py`: ARG
scoping, `--target`, unused stages skipped), and runs each stage on a `Builder`: FROM makes the
working container (an image, `scratch`, or an earlier stage's result), ONBUILD triggers of the
base run first, then each instruction (`instructions.py` for the config edits and the history
text, `run.py` for RUN, `Builder.copy` for COPY/ADD).

Two ways to commit, as buildah:
- `layers` (podman's default): every step becomes an image of its own (no name), found again
  by the next build through the layer cache (`cache.py`): "--> Using cache <id>".  A step runs
  in a fresh working container made from the previous step's image.
- without layers (buildah's default; `--squash`): one working container per stage, each step
  recorded as an empty-layer history entry, one commit at the end holding every change.

The output is podman's: `STEP 2/5: RUN ...` (`[2/3] ` before it in a multi-stage file), what
RUN prints, `--> Using cache <id>`, `--> <11 hex>`, `COMMIT <name>`, `Successfully tagged
<name>`, and the full image ID last (`quiet`: the ID only).  RUN's standard error, pull and
commit progress ("Getting image source signatures" ...) go to `err` (stderr), as podman's do.
Without layers a stage that only `COPY --from` reads is not committed: its working container
stays mounted until the end (as buildah).  RUN uses the host's network unless `network` (or
`RUN --network`) says "none".  A failing step raises
`BuildError('building at STEP "RUN false": while running runtime: exit status 1')` whose
`engine_exit_code` is the command's exit status (podman exits with it); the working
containers are removed (with `force_rm`) and nothing is tagged.

`labels` go into the last stage's config, `annotations` into its manifest (OCI format only),
over the base image's (as podman).  The cache compares configs, not manifests: with
annotations the last step is committed anew rather than taken from the cache (buildah 1.28
takes it and loses them).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from pypod.build.cache import LayerCache
from pypod.build.containerfile import Containerfile, Instruction, parse, parse_instructions
from pypod.build.expand import expand_arguments, process_word
from pypod.build.ignore import Ignore, load_ignore
from pypod.build.instructions import (
    LAYER_INSTRUCTIONS,
    apply_config,
    created_by,
    env_map,
    run_argv,
    set_env,
)
from pypod.build.stages import (
    PROXY_ARGS,
    ArgScope,
    StagePlan,
    default_containerfile,
    heading_args,
    plan_stages,
    platform_args,
    stage_ref,
)
from pypod.errors import EXIT_ENGINE_ERROR, InvalidArgument, PypodError
from pypod.record import field, record
from pypod.storage.store import Store

if TYPE_CHECKING:
    from pypod.build.builder import Builder, CommitOptions
    from pypod.image.transfer import TransferOptions

log = logging.getLogger(__name__)

#: the PATH a base image without one gets (buildah's)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

__all__ = ["BuildError", "BuildOptions", "build", "read_containerfiles"]


class BuildError(PypodError):
    """A step failed; `engine_exit_code` is what podman exits with (a RUN's own status)."""

    def __init__(self, message: str, *, exit_code: int = EXIT_ENGINE_ERROR) -> None:
        super().__init__(message)
        self.engine_exit_code = exit_code


@record
class BuildOptions:
    #: `-f`: paths ("-" reads standard input); empty: Containerfile or Dockerfile in the context
    containerfiles: tuple[str, ...]
    context_dir: str
    tags: tuple[str, ...] = ()
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    #: `--label K=V` set on the final image's config
    labels: tuple[str, ...] = ()
    #: `--annotation K=V` set on the final image's manifest (an OCI one: a Docker manifest has
    #: none, as buildah)
    annotations: tuple[str, ...] = ()
    layers: bool = True
    no_cache: bool = False
    #: podman's --squash: the new layers as one (no cache); --squash-all: base included
    squash: bool = False
    squash_all: bool = False
    format: str = "oci"
    iidfile: str | None = None
    #: seconds since the epoch for every created time and file time (reproducible)
    timestamp: int | None = None
    isolation: str = "oci"
    network: str = "host"
    pull: str = "missing"
    quiet: bool = False
    #: remove working containers after a successful build / also after a failed one
    rm: bool = True
    force_rm: bool = False
    transfer: TransferOptions | None = None
    #: `--ignorefile`
    ignorefile: str | None = None
    #: `RUN --mount=type=secret,id=ID`: id -> host file
    secrets: Mapping[str, str] = field(default_factory=dict)
    #: `-v` for every RUN
    volumes: tuple[str, ...] = ()
    out: TextIO = sys.stdout
    #: pull and commit progress ("Getting image source signatures" ...), as buildah: stderr
    err: TextIO | None = None


def resolve_containerfile(path: str, context_dir: str) -> str:
    """A `-f` path: as given (from the current directory), else under the context."""
    if path == "-" or os.path.isabs(path) or os.path.exists(path):
        return path
    candidate = os.path.join(context_dir, path)
    return candidate if os.path.exists(candidate) else path


def read_containerfiles(opts: BuildOptions) -> Containerfile:
    """Parse the Containerfile(s); several `-f` files are read as one, in order."""
    paths = list(opts.containerfiles) or [default_containerfile(opts.context_dir)]
    texts: list[tuple[str, str]] = []
    for path in paths:
        if path == "-":
            texts.append(("-", sys.stdin.read()))
            continue
        real = resolve_containerfile(path, opts.context_dir)
        try:
            with open(real, encoding="utf-8", errors="surrogateescape") as f:
                texts.append((path, f.read()))
        except OSError as e:
            raise InvalidArgument(
                f"reading Containerfile {path}: {e.strerror}: check the -f path"
            ) from None
    if len(texts) == 1:
        return parse(texts[0][1], texts[0][0])
    from pypod.build.containerfile import _assemble

    instructions: list[Instruction] = []
    escape = "\\"
    for i, (path, text) in enumerate(texts):
        if i == 0:
            escape = parse(text, path).escape if text.strip() else escape
        instructions += parse_instructions(text, path)
    return _assemble(texts[0][0], escape, None, (), instructions)


# --- the build ----------------------------------------------------------------------------


class _Stage:
    """The state of the stage being built."""

    __slots__ = ("builder", "cmd_set", "comment", "count", "last", "parent", "plan", "prefix",
                 "scope")  # fmt: skip

    def __init__(self, plan: StagePlan, builder: Builder, scope: ArgScope, prefix: str,
                 *, last: bool) -> None:  # fmt: skip
        self.plan = plan
        #: the stage whose result is the build's image (--label applies to it)
        self.last = last
        self.builder = builder
        self.scope = scope
        self.prefix = prefix
        self.cmd_set = False
        #: the image the working container stands on ("" for scratch), for the cache
        self.parent = builder.from_image_id
        #: the history comment of the next commit ("FROM <base>", then "FROM <12 hex>")
        self.comment = builder.history_comment
        self.count = 1 + len(plan.stage.instructions)


class _Build:
    def __init__(self, store: Store, opts: BuildOptions) -> None:
        self.store = store
        self.opts = opts
        self.layers = opts.layers and not (opts.squash or opts.squash_all)
        self.cache = LayerCache(store)
        self.cf: Containerfile | None = None
        self.ignore: Ignore = Ignore()
        #: stage index -> its image ID
        self.stage_images: dict[int, str] = {}
        #: working containers of this build (removed at the end, see rm / force_rm)
        self.builders: list[Builder] = []
        #: mounted roots of images and stages for COPY --from / RUN --mount from=
        self.sources: dict[str, tuple[Builder, str]] = {}
        #: stage images to remove at the end (builds without layers)
        self.temporary_images: list[str] = []
        self.heading: dict[str, str] = {}
        #: stages in the "[2/3]" of the output: those up to the target
        self.total = 0
        #: build args some ARG declared (the others are reported as not consumed)
        self.consumed: set[str] = set()

    # -- output ---------------------------------------------------------------------------
    def say(self, line: str) -> None:
        if not self.opts.quiet:
            self.opts.out.write(line + "\n")
            self.opts.out.flush()

    def progress(self) -> Callable[[str], None] | None:
        return None if self.opts.quiet else self.report

    def report(self, line: str) -> None:
        err = self.opts.err or sys.stderr
        err.write(line + "\n")
        err.flush()

    # -- the whole build --------------------------------------------------------------------
    def run(self) -> str:
        opts = self.opts
        _key_values("--annotation", opts.annotations)
        _key_values("--label", opts.labels)
        if opts.format not in ("oci", "docker"):
            raise InvalidArgument(f'unrecognized image type "{opts.format}": use oci or docker')
        if not os.path.isdir(opts.context_dir):
            raise InvalidArgument(
                f"the build context {opts.context_dir} is not a directory: name an existing one"
            )
        cf = self.cf = read_containerfiles(opts)
        files = [os.path.abspath(resolve_containerfile(f, opts.context_dir))
                 for f in opts.containerfiles if f != "-"]  # fmt: skip
        self.ignore = load_ignore(opts.context_dir, files or None, ignorefile=opts.ignorefile)
        plans = plan_stages(cf, opts.build_args, opts.target)
        self.heading = {**platform_args(), **heading_args(cf, opts.build_args)}
        self.consumed = {name for ins in cf.global_args for name, _ in ins.arg_pairs()}
        self.total = plans[-1].stage.index + 1
        bases = {p.base_stage for p in plans if p.base_stage is not None}
        ok = False
        try:
            image_id = ""
            for i, plan in enumerate(plans):
                last = i == len(plans) - 1
                # without layers a stage only COPY --from takes is not committed: its working
                # container is kept and read from (as buildah)
                keep = not self.layers and not last and plan.stage.index not in bases
                image_id = self.run_stage(plan, last=last, keep=keep)
                if not keep:
                    self.stage_images[plan.stage.index] = image_id
            ok = True
        finally:
            self.cleanup(ok)
        self.finish(image_id)
        return image_id

    def finish(self, image_id: str) -> None:
        from pypod.image.local import normalize_tag_name, tag_image

        tags = [normalize_tag_name(t) for t in self.opts.tags]
        # podman names the first tag, then the names the image had already (a cached or
        # base image), then the other tags
        had = [n for n in self.store.image(image_id).names if n not in tags] if tags else []
        if tags:
            tag_image(self.store, image_id, list(self.opts.tags))
        self.say(f"--> {image_id[:11]}")
        unused = sorted(set(self.opts.build_args) - self.consumed - PROXY_ARGS)
        if unused:
            self.say(f"[Warning] one or more build args were not consumed: [{' '.join(unused)}]")
        for name in [*tags[:1], *had, *tags[1:]]:
            self.say(f"Successfully tagged {name}")
        if self.opts.iidfile:
            with open(self.opts.iidfile, "w", encoding="utf-8") as f:
                f.write(f"sha256:{image_id}")
        self.opts.out.write(image_id + "\n")
        self.opts.out.flush()

    def cleanup(self, ok: bool) -> None:
        remove = self.opts.rm if ok else self.opts.force_rm
        for builder, _root in self.sources.values():
            with contextlib.suppress(PypodError, OSError):
                builder.unmount()
                builder.remove()
        self.sources.clear()
        if remove:
            for builder in self.builders:
                with contextlib.suppress(PypodError, OSError):
                    builder.remove()
            self.builders.clear()
        for image_id in self.temporary_images:
            with contextlib.suppress(PypodError):
                self.store.delete_image(image_id)

    # -- working containers -------------------------------------------------------------------
    def new_builder(self, image: str, *, pull: str | None = None) -> Builder:
        from pypod.build.builder import Builder, FromOptions

        options = FromOptions(pull=pull or self.opts.pull, transfer=self.opts.transfer,
                              progress=self.progress())  # fmt: skip
        builder = Builder.new(self.store, image, options)
        self.builders.append(builder)
        return builder

    def drop_builder(self, builder: Builder) -> None:
        if not self.opts.rm:
            return
        with contextlib.suppress(PypodError, OSError):
            builder.remove()
        with contextlib.suppress(ValueError):
            self.builders.remove(builder)

    def source_root(self, name: str, stage_index: int) -> str:
        """The mounted root of `name`: an earlier stage's result or an image."""
        assert self.cf is not None
        index = stage_ref(self.cf, name, stage_index)
        if index is not None and f"stage:{index}" in self.sources:
            return self.sources[f"stage:{index}"][1]
        if index is not None:
            if index not in self.stage_images:
                raise InvalidArgument(f"stage {name!r} has not been built: it comes later")
            image, key = self.stage_images[index], f"stage:{index}"
        else:
            image, key = name, f"image:{name}"
        if key not in self.sources:
            from pypod.build.builder import Builder, FromOptions

            builder = Builder.new(self.store, image, FromOptions(
                pull="never" if index is not None else self.opts.pull,
                transfer=self.opts.transfer, progress=self.progress()))  # fmt: skip
            try:
                root = builder.mount()
            except BaseException:
                builder.remove()
                raise
            self.sources[key] = (builder, root)
        return self.sources[key][1]

    # -- stages --------------------------------------------------------------------------------
    def keep_stage(self, st: _Stage) -> str:
        """A stage read by COPY --from only (builds without layers): its container stays
        mounted until the end of the build instead of being committed."""
        builder = st.builder
        self.sources[f"stage:{st.plan.stage.index}"] = (builder, builder.mount())
        with contextlib.suppress(ValueError):
            self.builders.remove(builder)
        return ""

    def run_stage(self, plan: StagePlan, *, last: bool, keep: bool = False) -> str:
        assert self.cf is not None
        cf = self.cf
        stage = plan.stage
        prefix = f"[{plan.position}/{self.total}] " if self.total > 1 else ""
        count = 1 + len(stage.instructions)
        name = stage.from_instruction.args[2] if len(stage.from_instruction.args) == 3 else None
        # an earlier stage is shown by the ID of its image, as buildah does
        base_text = self.stage_images[plan.base_stage] if plan.base_stage is not None else plan.base
        from_text = f"FROM {base_text}" + (f" AS {name}" if name else "")
        self.say(f"{prefix}STEP 1/{count}: {from_text}")
        if plan.base_stage is not None:
            base = self.stage_images[plan.base_stage]
            builder = self.new_builder(base, pull="never")
        else:
            try:
                builder = self.new_builder(plan.base)
            except PypodError as e:
                raise BuildError(f'building at STEP "{from_text}": {e}',
                                 exit_code=e.engine_exit_code) from e  # fmt: skip
        if "PATH" not in env_map(builder.config):  # imagebuilder's FromImage: a default PATH
            set_env(builder.config, "PATH", DEFAULT_PATH)
        st = _Stage(plan, builder, ArgScope(self.opts.build_args, self.heading), prefix,
                    last=last)  # fmt: skip
        if plan.base_stage is not None:
            st.comment = f"FROM {base[:12]}"
        triggers = [str(t) for t in builder.config.get("OnBuild") or ()]
        builder.config.pop("OnBuild", None)
        #: the base's ONBUILD triggers first, then the stage's instructions
        steps: list[Instruction] = []
        for text in triggers:
            try:
                trigger = parse_instructions(text, f"{cf.path}: ONBUILD trigger of {plan.base}")
            except PypodError as e:
                raise BuildError(f"reading the ONBUILD triggers of {plan.base}: {e}") from e
            steps += trigger
        steps += stage.instructions
        # as podman: the FROM line counted the stage's own instructions, the steps that
        # follow count the triggers too
        count = 1 + len(steps)
        if not steps:
            if keep:
                return self.keep_stage(st)
            if self.layers and st.parent and not (last and self.final_metadata()):
                # with layers, `FROM image` alone is that image (buildah commits nothing)
                if last:
                    self.say(
                        f"{prefix}COMMIT" + (f" {self.opts.tags[0]}" if self.opts.tags else "")
                    )
                else:
                    self.say(f"--> {st.parent[:11]}")
                self.drop_builder(builder)
                return st.parent
            return self.commit_stage(st, last=last, created="", empty=False)
        for i, ins in enumerate(steps):
            final = i == len(steps) - 1
            self.say(f"{prefix}STEP {i + 2}/{count}: {ins.original}")
            try:
                if self.layers:
                    self.layered_step(st, ins, last_step=final, last_stage=last)
                else:
                    text, _writes = self.execute(st, ins)
                    if final and keep:
                        return self.keep_stage(st)
                    if final:
                        return self.commit_stage(st, last=last, created=text, empty=False)
                    self.add_history(st.builder, text)
            except BuildError:
                raise
            except PypodError as e:
                raise BuildError(f'building at STEP "{ins.original}": {e}',
                                 exit_code=e.engine_exit_code) from e  # fmt: skip
            except OSError as e:
                where = f": {e.filename}" if e.filename else ""
                raise BuildError(
                    f'building at STEP "{ins.original}": {e.strerror or e}{where}'
                ) from e
        return st.parent

    def final_metadata(self) -> bool:
        """Whether `--label`s or `--annotation`s change the last stage's image."""
        return bool(self.opts.labels or self.opts.annotations)

    def apply_labels(self, st: _Stage) -> None:
        """`--label`s and `--annotation`s, set on each image the last stage commits (over its
        LABELs and the annotations it inherits, as podman)."""
        if not self.final_metadata() or not st.last:
            return
        config = st.builder.config
        if self.opts.labels:
            config["Labels"] = {**(config.get("Labels") or {}),
                                **_key_values("--label", self.opts.labels)}  # fmt: skip
        st.builder.annotations.update(_key_values("--annotation", self.opts.annotations))

    def add_history(self, builder: Builder, text: str) -> None:
        builder.add_history(text, empty_layer=True)
        if self.opts.timestamp is not None:
            from pypod.image.local import go_time

            builder.history[-1]["created"] = go_time(float(self.opts.timestamp))

    def commit_options(
        self, st: _Stage, *, created: str, empty: bool, final: bool
    ) -> CommitOptions:
        from pypod.build.builder import CommitOptions

        return CommitOptions(
            format=self.opts.format,
            squash=self.opts.squash_all and final,
            empty_layer=empty,
            created_by=created,
            history_comment=st.comment,
            timestamp=self.opts.timestamp,
            progress=None if self.layers else self.progress(),
        )

    def commit_stage(self, st: _Stage, *, last: bool, created: str, empty: bool) -> str:
        """The stage's one commit (builds without layers, or a stage with no steps)."""
        if last:
            self.say(f"{st.prefix}COMMIT" + (f" {self.opts.tags[0]}" if self.opts.tags else ""))
        self.apply_labels(st)
        image_id = st.builder.commit(None, self.commit_options(st, created=created, empty=empty,
                                                               final=last))  # fmt: skip
        self.cache.add(image_id)
        if not last:
            self.say(f"--> {image_id[:11]}")
            if not self.layers:
                self.temporary_images.append(image_id)
        self.drop_builder(st.builder)
        st.parent = image_id
        return image_id

    # -- one step ------------------------------------------------------------------------------
    def expand(self, st: _Stage, ins: Instruction, words: list[str] | tuple[str, ...]
               ) -> list[str]:  # fmt: skip
        assert self.cf is not None
        env = {**st.scope.visible(), **env_map(st.builder.config)}
        try:
            return expand_arguments(ins.command, words, env, self.cf.escape)
        except InvalidArgument as e:
            raise ins.error(str(e)) from None

    def expand_flag(self, st: _Stage, ins: Instruction, value: str | None) -> str | None:
        assert self.cf is not None
        if value is None:
            return None
        env = {**st.scope.visible(), **env_map(st.builder.config)}
        try:
            return process_word(value, env, self.cf.escape)
        except InvalidArgument as e:
            raise ins.error(str(e)) from None

    def execute(self, st: _Stage, ins: Instruction) -> tuple[str, bool]:
        """Do `ins` in the working container; (its history text, whether it wrote files)."""
        command = ins.command
        builder = st.builder
        if command == "ARG":
            self.declare_args(st, ins)
            return created_by(ins, arg_keys=st.scope.keys_text()), False
        if command == "RUN":
            self.run_step(st, ins)
            return self.run_created_by(st, ins), True
        if command in ("COPY", "ADD"):
            return created_by(ins, content=self.copy(st, ins)), True
        if command == "MAINTAINER":
            builder.author = ins.args[0]
            return created_by(ins), False
        args = self.expand(st, ins, ins.args)
        st.cmd_set = apply_config(ins, builder.config, args, cmd_set=st.cmd_set)
        if command == "WORKDIR":
            self.make_workdir(builder)
        return created_by(ins), False

    def declare_args(self, st: _Stage, ins: Instruction) -> None:
        assert self.cf is not None
        for name, default in ins.arg_pairs():
            value = None
            if default is not None:
                env = {**st.scope.visible(), **env_map(st.builder.config)}
                try:
                    value = process_word(default, env, self.cf.escape)
                except InvalidArgument as e:
                    raise ins.error(str(e)) from None
            st.scope.declare(name, value)
            self.consumed.add(name)
            if name not in st.scope.values:
                log.warning('missing "%s" build argument. Try adding "--build-arg %s=<VALUE>" '
                            "to the command line", name, name)  # fmt: skip

    def run_created_by(self, st: _Stage, ins: Instruction) -> str:
        return created_by(ins, run_args=st.scope.history_text(env_map(st.builder.config)))

    def make_workdir(self, builder: Builder) -> None:
        from pypod.build.sources import host_path, resolve_in_root

        workdir = str(builder.config.get("WorkingDir") or "/")
        root = builder.mount()
        try:
            # links resolved inside the root: the host's own directories are never touched
            path = host_path(root, resolve_in_root(root, workdir))
            if not path.startswith(root.rstrip("/") + "/") and path != root:
                raise InvalidArgument(f"WORKDIR {workdir}: resolves outside the container")
            if not os.path.isdir(path):
                os.makedirs(path, mode=0o755, exist_ok=True)
        finally:
            builder.unmount()

    def copy(self, st: _Stage, ins: Instruction) -> str:
        args = self.expand(st, ins, ins.args)
        chown = self.expand_flag(st, ins, ins.flag_value("chown"))
        chmod = self.expand_flag(st, ins, ins.flag_value("chmod"))
        source = self.expand_flag(st, ins, ins.flag_value("from"))
        sources, dest = args[:-1], args[-1]
        with self.heredoc_context(ins) as (heredoc_dir, heredoc_names):
            from_root = None
            if heredoc_dir is not None:
                if source:
                    raise ins.error("COPY --from cannot take here-documents")
                sources = [heredoc_names.get(s, s) for s in sources]
                from_root = heredoc_dir
            elif source:
                from_root = self.source_root(source, st.plan.stage.index)
            return st.builder.copy(
                sources,
                dest,
                context_dir=self.opts.context_dir,
                add=ins.command == "ADD",
                chown=chown or None,
                chmod=chmod or None,
                ignore=None if from_root else self.ignore,
                from_root=from_root,
            )

    @contextlib.contextmanager
    def heredoc_context(self, ins: Instruction) -> Iterator[tuple[str | None, dict[str, str]]]:
        """COPY/ADD `<<NAME dest`: a directory holding each document as a file NAME."""
        if not ins.heredocs:
            yield None, {}
            return
        with tempfile.TemporaryDirectory(prefix="pypod-build-heredoc-") as tmp:
            names: dict[str, str] = {}
            for doc in ins.heredocs:
                with open(os.path.join(tmp, doc.name), "w", encoding="utf-8") as f:
                    f.write(doc.content)
                names[f"<<{doc.name}"] = doc.name
                names[f"<<-{doc.name}"] = doc.name
                names[f'<<"{doc.name}"'] = doc.name
                names[f"<<'{doc.name}'"] = doc.name
            yield tmp, names

    def run_step(self, st: _Stage, ins: Instruction) -> None:
        from pypod.build.run import RunOptions
        from pypod.build.run import run as run_in_builder

        builder = st.builder
        config = builder.config
        mounts = tuple(self.expand_flag(st, ins, m) or "" for m in ins.flag_values("mount"))
        stage_roots: dict[str, str] = {}
        for mount in mounts:
            for part in mount.split(","):
                key, _, value = part.partition("=")
                if key.strip() == "from" and value:
                    stage_roots[value] = self.source_root(value, st.plan.stage.index)
        network = self.expand_flag(st, ins, ins.flag_value("network")) or "default"
        if network == "default":
            network = self.opts.network
        elif network not in ("none", "host"):
            raise ins.error(f"RUN --network={network}: use default, none or host")
        paths = self.store.storage_paths()
        with self.output() as (stdin, stdout, stderr):
            code = run_in_builder(
                builder,
                RunOptions(
                    argv=tuple(run_argv(ins, config)),
                    env=tuple(st.scope.run_env(env_map(config))),
                    volumes=self.opts.volumes,
                    mounts=mounts,
                    network=network,
                    isolation=self.opts.isolation,
                    context_dir=self.opts.context_dir,
                    stage_roots=stage_roots,
                    secrets=dict(self.opts.secrets),
                    cache_root=os.path.join(paths.graphroot, "build-cache"),
                    stdin=stdin,
                    stdout=stdout,
                    stderr=stderr,
                ),
            )
        if code != 0:
            raise BuildError(
                f'building at STEP "{ins.original}": while running runtime: exit status {code}',
                exit_code=code,
            )

    @contextlib.contextmanager
    def output(self) -> Iterator[tuple[int, int, int]]:
        """(stdin, stdout, stderr) for RUN, as podman: no input; the output to the build's
        output (nowhere when quiet), the errors to its error stream."""
        null = os.open(os.devnull, os.O_RDWR)
        try:
            with contextlib.ExitStack() as stack:
                out = null if self.opts.quiet else stack.enter_context(_fd_of(self.opts.out))
                err = stack.enter_context(_fd_of(self.opts.err or sys.stderr))
                yield null, out, err
        finally:
            os.close(null)

    def layered_step(self, st: _Stage, ins: Instruction, *, last_step: bool,
                     last_stage: bool) -> None:  # fmt: skip
        """One step with `--layers`: look for the cached image, else do it and commit it."""
        builder = st.builder
        writes = ins.command in LAYER_INSTRUCTIONS
        if ins.command == "RUN":
            text = self.run_created_by(st, ins)
            if self.use_cache(st, text, empty=False, last_step=last_step, last_stage=last_stage):
                return
            self.run_step(st, ins)
        else:
            text, writes = self.execute(st, ins)
            if self.use_cache(st, text, empty=not writes, last_step=last_step,
                              last_stage=last_stage):  # fmt: skip
                return
        final = last_step and last_stage
        if final:
            self.say(f"{st.prefix}COMMIT" + (f" {self.opts.tags[0]}" if self.opts.tags else ""))
        self.apply_labels(st)
        image_id = builder.commit(None, self.commit_options(st, created=text, empty=not writes,
                                                            final=final))  # fmt: skip
        self.cache.add(image_id)
        self.next_container(st, image_id, last_step=last_step, last_stage=last_stage)

    def use_cache(self, st: _Stage, text: str, *, empty: bool, last_step: bool,
                  last_stage: bool) -> bool:  # fmt: skip
        self.apply_labels(st)
        if self.opts.no_cache:
            return False
        if last_step and last_stage and self.opts.annotations:
            # the annotations live in the manifest, which the cache does not compare (and an
            # image found keeps the manifest it was stored with): commit the last step anew
            return False
        found = self.cache.find(st.parent, text, empty_layer=empty, config=st.builder.config,
                                docker=self.opts.format == "docker")  # fmt: skip
        if found is None:
            return False
        self.say(f"--> Using cache {found}")
        if last_step and last_stage and self.opts.tags:
            self.say(f"{st.prefix}COMMIT {self.opts.tags[0]}")
        self.next_container(st, found, last_step=last_step, last_stage=last_stage)
        return True

    def next_container(self, st: _Stage, image_id: str, *, last_step: bool,
                       last_stage: bool) -> None:  # fmt: skip
        """After a step: the next step runs in a new container made from `image_id`."""
        old = st.builder
        st.parent = image_id
        st.comment = f"FROM {image_id[:12]}"
        if last_step:
            self.drop_builder(old)
            if not last_stage:
                self.say(f"--> {image_id[:11]}")
            return
        self.say(f"--> {image_id[:11]}")
        new = self.new_builder(image_id, pull="never")
        new.author = old.author
        new.annotations = dict(old.annotations)  # the stage base's, not the step image's
        st.builder = new
        self.drop_builder(old)


@contextlib.contextmanager
def _fd_of(stream: TextIO) -> Iterator[int]:
    """A file descriptor writing to `stream`: its own, or a temporary file copied into it."""
    stream.flush()
    fd: int | None = None
    with contextlib.suppress(AttributeError, OSError, io.UnsupportedOperation):
        fd = stream.fileno()
    if fd is not None:
        yield fd
        return
    with tempfile.TemporaryFile() as tmp:
        try:
            yield tmp.fileno()
        finally:
            tmp.seek(0)
            stream.write(tmp.read().decode("utf-8", "replace"))
            stream.flush()


def _key_values(flag: str, specs: Sequence[str]) -> dict[str, str]:
    """`K=V` flags (`--label`, `--annotation`) as a dict; an empty key is refused."""
    out: dict[str, str] = {}
    for spec in specs:
        key, _, value = spec.partition("=")
        if not key:
            raise InvalidArgument(f"{flag} {spec!r}: the name is empty: use KEY=VALUE")
        out[key] = value
    return out


def build(store: Store, opts: BuildOptions) -> str:
    """Build the image; its ID (see the module docstring)."""
    return _Build(store, opts).run()
