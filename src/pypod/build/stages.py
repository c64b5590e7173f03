"""Which stages of a Containerfile a build runs, what each one starts from, and ARG scoping.

The rules, as buildah 1.28 (imagebuilder) applies them:

- The ARGs before the first FROM ("heading" args) are visible to FROM lines only; a
  `--build-arg` overrides their defaults.  Inside a stage an `ARG name` makes `name` usable
  from there on; its value is the `--build-arg`, else the ARG's own default, else the heading
  arg of that name; a bare `ARG name` with none of those declares a name without a value.
- `--target NAME` builds up to that stage; the stages after it are dropped.  A stage that the
  last stage does not need (as its FROM base, through `COPY --from` or `RUN --mount=from=`,
  directly or through another stage) is skipped.
- `FROM <name of an earlier stage>` builds on that stage's result; `FROM scratch` starts
  empty; anything else is an image.  `--platform` on FROM is accepted for this host's
  platform only.
"""

from __future__ import annotations

import os
import platform as _platform
from collections.abc import Mapping

from pypod.build.containerfile import Containerfile, Instruction, Stage
from pypod.build.expand import process_word
from pypod.errors import InvalidArgument, NotSupported
from pypod.record import record

#: proxy variables a `--build-arg` may set without an ARG (Docker's and buildah's list);
#: they reach RUN's environment but never the history
PROXY_ARGS = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)

_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386"}


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this machine, in OCI words ("linux", "amd64", "")."""
    machine = _platform.machine()
    arch = _ARCHES.get(machine, machine)
    variant = "v7" if machine == "armv7l" else ("v8" if arch == "arm64" else "")
    return "linux", arch, variant


def platform_args() -> dict[str, str]:
    """The predefined platform ARGs (TARGETPLATFORM, BUILDARCH ...) for this host."""
    os_, arch, variant = host_platform()
    plat = f"{os_}/{arch}" + (f"/{variant}" if variant else "")
    out: dict[str, str] = {}
    for prefix in ("TARGET", "BUILD"):
        out[f"{prefix}PLATFORM"] = plat
        out[f"{prefix}OS"] = os_
        out[f"{prefix}ARCH"] = arch
        out[f"{prefix}VARIANT"] = variant
    return out


def check_platform(value: str, ins: Instruction) -> None:
    """`FROM --platform=VALUE`: this host's platform only (else NotSupported)."""
    os_, arch, variant = host_platform()
    parts = value.split("/")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise ins.error(f"invalid platform {value!r}: use OS/ARCH[/VARIANT]")
    ok = parts[0] == os_ and (len(parts) < 2 or parts[1] == arch)
    if ok and len(parts) == 3 and variant and parts[2] != variant:
        ok = False
    if not ok:
        raise NotSupported(
            f"{ins.path}:{ins.line}: building for platform {value!r} is not supported yet: "
            f"pypod builds for this host's platform ({os_}/{arch}) only"
        )


class ArgScope:
    """The build arguments one stage sees (imagebuilder's Args / AllowedArgs)."""

    __slots__ = ("allowed", "heading", "user", "values")

    def __init__(self, user: Mapping[str, str], heading: Mapping[str, str]) -> None:
        self.user = dict(user)
        self.heading = dict(heading)
        #: names declared by an ARG in this stage, in order
        self.allowed: dict[str, None] = {}
        #: the value of each arg that has one (user args are there from the start)
        self.values: dict[str, str] = dict(user)

    def declare(self, name: str, default: str | None) -> None:
        """`ARG name[=default]` (the default already expanded)."""
        self.allowed[name] = None
        if name in self.user:
            return
        if default is not None:
            self.values[name] = default
        elif name in self.heading:
            self.values[name] = self.heading[name]

    def visible(self) -> dict[str, str]:
        """The declared args that have a value (what expansion and RUN see)."""
        return {k: self.values[k] for k in self.allowed if k in self.values}

    def run_env(self, image_env: Mapping[str, str]) -> list[str]:
        """`K=V` for RUN's environment: visible args (and proxy build args) not set by ENV."""
        out = [f"{k}={v}" for k, v in self.visible().items() if k not in image_env]
        out += [f"{k}={v}" for k, v in self.user.items()
                if k in PROXY_ARGS and k not in self.allowed and k not in image_env]  # fmt: skip
        return out

    def history_text(self, image_env: Mapping[str, str]) -> str:
        """buildah's `getBuildArgsResolvedForRun`: sorted `K=V` (ENV's value wins)."""
        pairs = [f"{k}={image_env.get(k, v)}" for k, v in self.visible().items()]
        return " ".join(sorted(pairs))

    def keys_text(self) -> str:
        """buildah's `getBuildArgsKey`: the sorted names of the declared args with a value."""
        return " ".join(sorted(self.visible()))


def heading_args(cf: Containerfile, build_args: Mapping[str, str]) -> dict[str, str]:
    """The values of the ARGs before the first FROM (build args win over defaults)."""
    values: dict[str, str] = {}
    env = {**platform_args()}
    for ins in cf.global_args:
        for name, default in ins.arg_pairs():
            if name in build_args:
                values[name] = build_args[name]
            elif default is not None:
                try:
                    values[name] = process_word(default, {**env, **values}, cf.escape)
                except InvalidArgument as e:
                    raise ins.error(str(e)) from None
    return values


@record
class StagePlan:
    """One stage the build runs."""

    stage: Stage
    #: the FROM base after expansion ("scratch", an image name, or an earlier stage's name)
    base: str
    #: the index of the earlier stage it builds on, or None
    base_stage: int | None
    #: 1-based position among all stages of the file (the "[2/3]" of the output)
    position: int


def stage_ref(cf: Containerfile, name: str, before: int) -> int | None:
    """The index of the stage `name` names (its name, or its number) among the stages before
    `before`; None when it names no such stage (then it is an image)."""
    wanted = name.lower()
    for stage in cf.stages[:before]:
        if stage.name == wanted:
            return stage.index
    if name.isdigit() and int(name) < before:
        return int(name)
    return None


def _expand_flag(ins: Instruction, value: str, env: Mapping[str, str], escape: str) -> str:
    try:
        return process_word(value, env, escape)
    except InvalidArgument as e:
        raise ins.error(str(e)) from None


def stage_dependencies(
    cf: Containerfile, stage: Stage, heading: Mapping[str, str], build_args: Mapping[str, str]
) -> set[int]:
    """The earlier stages `stage` uses: `COPY --from`, `RUN --mount=...,from=` (values
    expanded with the stage's args as far as they can be known without running it)."""
    scope = ArgScope(build_args, heading)
    deps: set[int] = set()
    for ins in stage.instructions:
        if ins.command == "ARG":
            for name, default in ins.arg_pairs():
                value = None if default is None else _expand_flag(ins, default, scope.visible(),
                                                                  cf.escape)  # fmt: skip
                scope.declare(name, value)
        refs: list[str] = []
        if ins.command == "COPY":
            refs += ins.flag_values("from")
        if ins.command == "RUN":
            for mount in ins.flag_values("mount"):
                for part in mount.split(","):
                    key, _, value = part.partition("=")
                    if key.strip() == "from" and value:
                        refs.append(value)
        for ref in refs:
            index = stage_ref(cf, _expand_flag(ins, ref, scope.visible(), cf.escape), stage.index)
            if index is not None:
                deps.add(index)
    return deps


def plan_stages(
    cf: Containerfile, build_args: Mapping[str, str], target: str | None = None
) -> list[StagePlan]:
    """The stages to run, in order, each with its expanded base."""
    heading = heading_args(cf, build_args)
    last = cf.stage(target).index if target else len(cf.stages) - 1
    from_env = {**platform_args(), **heading}
    bases: dict[int, tuple[str, int | None]] = {}
    for stage in cf.stages[: last + 1]:
        ins = stage.from_instruction
        base = _expand_flag(ins, stage.base, from_env, cf.escape)
        if not base:
            raise ins.error(f"FROM {stage.base}: the base image name is empty after expansion")
        bases[stage.index] = (base, stage_ref_by_name(cf, base, stage.index))
    needed: set[int] = set()
    todo = [last]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        base_stage = bases[index][1]
        if base_stage is not None:
            todo.append(base_stage)
        todo += stage_dependencies(cf, cf.stages[index], heading, build_args)
    plans = []
    for index in sorted(needed):
        stage = cf.stages[index]
        platform_value = stage.platform
        if platform_value:
            check_platform(_expand_flag(stage.from_instruction, platform_value, from_env,
                                        cf.escape), stage.from_instruction)  # fmt: skip
        base, base_stage = bases[index]
        plans.append(StagePlan(stage=stage, base=base, base_stage=base_stage, position=index + 1))
    return plans


def stage_ref_by_name(cf: Containerfile, base: str, before: int) -> int | None:
    """FROM names an earlier stage by its name only (a number is an image name there)."""
    wanted = base.lower()
    for stage in cf.stages[:before]:
        if stage.name == wanted:
            return stage.index
    return None


def default_containerfile(context_dir: str) -> str:
    """`Containerfile`, else `Dockerfile`, in the context directory (buildah's choice)."""
    for name in ("Containerfile", "Dockerfile"):
        path = os.path.join(context_dir, name)
        if os.path.exists(path):
            return path
    raise InvalidArgument(
        f"no Containerfile or Dockerfile specified or found in context directory "
        f"{os.path.abspath(context_dir)}: name one with -f"
    )
