"""`pypod run` / `pypod create` flags -> `ContainerConfig` and `RunExtras`, as podman reads them.

`parse_run(args)` takes the words after `run`: flags, then IMAGE, then the command (flags stop
at the image, as podman's; `--` ends them too).  Flags are read as pflag reads them: `--name x`,
`--name=x`, `-m512m`, `-m=512m`, grouped short booleans `-dit`, booleans `--rm=false`; list
flags of pflag's `strings` type (`--cap-add a,b`) are split on commas.  Every value is validated
with podman's message (an `InvalidArgument`: exit code 125).  Podman flags that pypod does not
implement are recognised and refused with "'--publish' is not supported yet".  Global flags
(`--root`, `--runroot` ...) may be given among the run flags, as with podman; they come back
in `RunExtras.globals`.

The config is what the engine stores; `image_id` is left "" (the engine resolves the image).
What is not part of the container (detach, pull policy, cidfile, registry options) is in
`RunExtras`.  The mount flags are parsed by `run_mounts`, the value parsers are `run_values`.
"""

from __future__ import annotations

import os

from pypod import jsoncodec
from pypod.cli.engine.run_limits import oom_score_adj, resources, shm_size, ulimits
from pypod.cli.engine.run_mounts import check_device, check_volumes_from, unify
from pypod.cli.engine.run_table import (
    CAPABILITIES,
    CSV_FLAGS,
    GLOBALS,
    RUN_FLAGS,
    UNSUPPORTED,
    flags_for,
)
from pypod.cli.engine.run_values import (
    FlagValueError,
    go_errno_text,
    go_quote,
    is_decimal,
    parse_bool,
    parse_detach_keys,
    parse_duration,
    parse_env_file,
    parse_env_line,
    parse_human_size,
    parse_signal,
    parse_uint,
    read_lines,
)
from pypod.cli.flags import Flag
from pypod.engine.config import ContainerConfig, Healthcheck
from pypod.engine.names import is_valid_name
from pypod.errors import InvalidArgument, NotSupported
from pypod.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = ["CAPABILITIES", "RUN_FLAGS", "RunExtras", "flags_for", "parse_run", "read_env_file"]


_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ftp_proxy",
               "FTP_PROXY", "no_proxy", "NO_PROXY")  # fmt: skip
_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                      "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                      "kernel.shm_rmid_forced"})  # fmt: skip
_PULL_POLICIES = {"always": "always", "Always": "always", "missing": "missing",
                  "Missing": "missing", "ifnotpresent": "missing", "IfNotPresent": "missing",
                  "": "missing", "newer": "newer", "Newer": "newer", "ifnewer": "newer",
                  "IfNewer": "newer", "never": "never", "Never": "never"}  # fmt: skip
#: the config's defaults, for the flags not given
_DEFAULT = ContainerConfig(image="", image_id="")


@record
class RunExtras:
    """What `run`/`create` flags ask for that is not part of the container's config."""

    #: `-d`: print the ID and return once the container started
    detach: bool = False
    #: `--replace`: remove a container of the same name first
    replace: bool = False
    #: `--pull`: "always", "missing", "never" or "newer"
    pull: str = "missing"
    #: `--cidfile`: where to write the container ID (checked: does not exist yet)
    cidfile: str | None = None
    #: `--sig-proxy`: forward the signals pypod receives to the container (foreground run)
    sig_proxy: bool = True
    #: `-q`: no pull progress
    quiet: bool = False
    #: `--platform` (or `--os`/`--arch`/`--variant` joined as "os/arch[/variant]")
    platform: str | None = None
    #: `--tls-verify`: None when not given
    tls_verify: bool | None = None
    authfile: str | None = None
    #: `--creds USER[:PASSWORD]`
    creds: str | None = None
    #: `--help` was given: nothing else was read or checked
    help: bool = False
    #: global flags given among the run flags (`--root` ...), by name without dashes
    globals: dict[str, str] = field(default_factory=dict)


# --- the flag scanner (pflag's rules) -------------------------------------------------------
def _scan(args: Sequence[str], command: str) -> tuple[dict[str, object], list[str]]:
    flags = (*flags_for(command), *GLOBALS)
    longs = {n: f for f in flags for n in f.names if len(n) > 1}
    shorts = {n: f for f in flags for n in f.names if len(n) == 1}
    see = f"\nSee 'pypod {command} --help'"
    values: dict[str, object] = {}

    def store(flag: Flag, value: str | None, shown: str) -> None:
        key = flag.names[0]
        if not flag.takes_value:
            values[key] = True if value is None else parse_bool(value, shown)
        elif flag.multiple:
            current = values.setdefault(key, [])
            assert isinstance(current, list)
            current.append(value)
        else:
            values[key] = value

    def shown(flag: Flag) -> str:
        short = [n for n in flag.names if len(n) == 1]
        return (f"-{short[0]}, " if short else "") + f"--{flag.names[0]}"

    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return values, list(args[i + 1 :])
        if not arg.startswith("-") or arg == "-":
            return values, list(args[i:])
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            flag = longs.get(name)
            if flag is None:
                raise InvalidArgument(f"unknown flag: --{name}{see}")
            if flag.takes_value and not eq:
                if i + 1 >= len(args):
                    raise InvalidArgument(f"flag needs an argument: --{name}{see}")
                i += 1
                value = args[i]
            store(flag, value if (eq or flag.takes_value) else None, shown(flag))
        else:
            j = 1
            while j < len(arg):
                c = arg[j]
                flag = shorts.get(c)
                if flag is None:
                    raise InvalidArgument(f"unknown shorthand flag: '{c}' in {arg}{see}")
                rest = arg[j + 1 :]
                if flag.takes_value:
                    if rest:
                        value = rest[1:] if rest.startswith("=") else rest
                    elif i + 1 < len(args):
                        i += 1
                        value = args[i]
                    else:
                        raise InvalidArgument(f"flag needs an argument: '{c}' in -{c}{see}")
                    store(flag, value, shown(flag))
                    break
                if rest.startswith("="):
                    store(flag, rest[1:], shown(flag))
                    break
                store(flag, None, shown(flag))
                j += 1
        i += 1
    return values, []


class _Values:
    """Typed access to the scanned values."""

    def __init__(self, values: dict[str, object]) -> None:
        self.values = values

    def has(self, name: str) -> bool:
        return name in self.values

    def text(self, name: str) -> str | None:
        v = self.values.get(name)
        return v if isinstance(v, str) else None

    def flag(self, name: str, default: bool = False) -> bool:
        v = self.values.get(name, default)
        return v if isinstance(v, bool) else default

    def texts(self, name: str) -> list[str]:
        v = self.values.get(name)
        items = [x for x in v if isinstance(x, str)] if isinstance(v, list) else []
        if name not in CSV_FLAGS:
            return items
        out: list[str] = []
        for item in items:
            if not any(c in item for c in '"\r\n'):
                out.extend(item.split(",") if item else [])  # what csv makes of it, sooner
                continue
            import csv

            out.extend(next(csv.reader([item]), []))
        return out


# --- parse_run ------------------------------------------------------------------------------
def parse_run(args: Sequence[str], *, command: str = "run") -> tuple[ContainerConfig, RunExtras]:
    """The words after `run` (or `create`) -> the container's config and the other requests."""
    try:
        return _parse_run(args, command)
    except FlagValueError as e:  # pflag's errors name the command's help, as podman's
        raise InvalidArgument(f"{e}\nSee 'pypod {command} --help'") from None


def _parse_run(args: Sequence[str], command: str) -> tuple[ContainerConfig, RunExtras]:
    raw, positional = _scan(args, command)
    v = _Values(raw)
    global_names = {f.names[0] for f in GLOBALS} - {"help"}
    globals_ = {k: x for k, x in raw.items() if k in global_names and isinstance(x, str)}
    if v.flag("help"):
        return ContainerConfig(image="", image_id=""), RunExtras(help=True, globals=globals_)
    if not positional:
        raise InvalidArgument("requires at least 1 arg(s), only received 0")
    _refuse_unsupported(v)

    name = v.text("name") or ""
    if name and not is_valid_name(name):
        raise InvalidArgument(
            "running container create option: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: "
            "invalid argument"
        )
    if v.flag("replace") and not name:
        raise InvalidArgument("cannot replace container without --name being set")
    from pypod.cli.engine.run_network import network_fields

    net = network_fields(v.texts, v.text, v.flag)
    network = net["network"] or None
    uts = _namespace(v, "uts", ("host", "private"))
    restart, retries = _restart(v)
    privileged = v.flag("privileged")
    security = _security(v)
    hostname = v.text("hostname")
    if hostname and uts == "host":
        raise InvalidArgument(
            "invalid config provided: cannot set hostname when running in the host UTS "
            "namespace: invalid configuration"
        )

    config = ContainerConfig(
        image=positional[0],
        image_id="",
        name=name,
        command=tuple(positional[1:]),
        entrypoint=_entrypoint(v.text("entrypoint")),
        env=_env(v),
        workdir=_workdir(v.text("workdir")),
        user=v.text("user") or None,
        group_add=_group_add(v.texts("group-add")),
        hostname=hostname or None,
        tty=v.flag("tty"),
        stdin=v.flag("interactive"),
        detach_keys=_detach_keys(v.text("detach-keys")),
        labels=_labels(v),
        annotations=_annotations(v.texts("annotation")),
        mounts=unify(v.texts("volume"), v.texts("mount"), v.texts("tmpfs")),
        volumes_from=tuple(check_volumes_from(t) for t in v.texts("volumes-from")),
        read_only=v.flag("read-only"),
        read_only_tmpfs=v.flag("read-only-tmpfs", True),
        privileged=privileged,
        cap_add=() if privileged else _capabilities(v.texts("cap-add")),
        cap_drop=() if privileged else _capabilities(v.texts("cap-drop")),
        no_new_privileges=security.no_new_privileges,
        seccomp_profile=security.seccomp,
        mask=security.mask,
        unmask=security.unmask,
        devices=tuple(check_device(t) for t in v.texts("device")),
        sysctls=_sysctls(v.texts("sysctl"), network),
        ulimits=ulimits(v.texts("ulimit")),
        shm_size=shm_size(v.text("shm-size")),
        oom_score_adj=oom_score_adj(v.text("oom-score-adj")),
        resources=resources(v.text),
        init=v.flag("init"),
        stop_signal=_stop_signal(v.text("stop-signal")),
        stop_timeout=_stop_timeout(v.text("stop-timeout")),
        restart_policy=restart,
        restart_retries=retries,
        healthcheck=_healthcheck(v),
        log_driver=_log_driver(v.text("log-driver")),
        log_max_size=_log_max_size(v.texts("log-opt")),
        tz=_tz(v.text("tz")),
        uts=uts,
        ipc=_namespace(v, "ipc", ("host", "private", "shareable", "none")),
        pid=_namespace(v, "pid", ("host", "private")),
        remove=v.flag("rm"),
        **net,
        runtime=_runtime(v.text("runtime")) if v.has("runtime") else _DEFAULT.runtime,
        cgroup_parent=_cgroup_parent(v),
        requires=tuple(v.texts("requires")),
        pod=_pod(v.text("pod"), v.text("pod-id-file")),
        **_userns(v),
        sdnotify=_sdnotify(v.text("sdnotify")),
        cgroups="split" if v.text("cgroups") == "split" else "",
        conmon_pidfile=os.path.abspath(v.text("conmon-pidfile") or "")
        if v.text("conmon-pidfile")
        else "",
    )
    if config.remove and _restart_text(v) not in ("", "no", "on-failure"):
        raise InvalidArgument(
            'the --rm option conflicts with --restart, when the restartPolicy is not "" and "no"'
        )
    extras = RunExtras(
        detach=v.flag("detach"),
        replace=v.flag("replace"),
        pull=_pull(v.text("pull")),
        cidfile=_cidfile(v.text("cidfile")),
        sig_proxy=v.flag("sig-proxy", True),
        quiet=v.flag("quiet"),
        platform=_platform(v),
        tls_verify=v.flag("tls-verify") if v.has("tls-verify") else None,
        authfile=v.text("authfile"),
        creds=v.text("creds"),
        globals=globals_,
    )
    return config, extras


def _refuse_unsupported(v: _Values) -> None:
    for name, harmless in UNSUPPORTED.items():
        if not v.has(name):
            continue
        raw = v.values[name]
        given = raw if isinstance(raw, list) else [raw]
        texts = [("true" if x else "false") if isinstance(x, bool) else str(x) for x in given]
        if harmless is not None and all(t in harmless for t in texts):
            continue
        raise NotSupported(f"'--{name}' is not supported yet")


# --- one function per flag (or group of flags) ----------------------------------------------
def _may_be_json_array(text: str) -> bool:
    """Whether `text` can be a JSON array: after JSON's white space, a "[" (what else
    `json.loads` would read is no array: asking it costs the `json` package's import)."""
    return text.lstrip(" \t\n\r").startswith("[")


def _entrypoint(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    if text == "":
        return ()
    if not _may_be_json_array(text):  # (a JSON document that is not an array: the same)
        return (text,)
    try:
        parsed = jsoncodec.loads(text)
    except ValueError:
        return (text,)
    if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
        return tuple(parsed)
    return (text,)


def _env(v: _Values) -> dict[str, str]:
    """--env-host, the host's proxy variables (--http-proxy, on by default), --env-file, -e."""
    env: dict[str, str] = {}
    if v.flag("env-host"):
        env.update(os.environ)
    if v.flag("http-proxy", True):
        env.update({k: os.environ[k] for k in _PROXY_VARS if k in os.environ})
    for path in v.texts("env-file"):
        parse_env_file(env, path)
    for line in v.texts("env"):
        parse_env_line(env, line)
    return env


def read_env_file(path: str) -> dict[str, str]:
    """The variables of an `--env-file` (podman's format: `K=V`, `K` from the host's
    environment, `K*` for every host variable starting with K; `#` comments)."""
    env: dict[str, str] = {}
    parse_env_file(env, path)
    return env


def _workdir(text: str | None) -> str | None:
    if not text:
        return None
    if not text.startswith("/"):
        raise InvalidArgument(f"workdir {go_quote(text)} must be an absolute path")
    return text


def _group_add(groups: list[str]) -> tuple[str, ...]:
    if "keep-groups" in groups:
        if len(groups) > 1:
            raise InvalidArgument(
                "the '--group-add keep-groups' option is not allowed with any other --group-add "
                "options"
            )
        raise NotSupported("'--group-add keep-groups' is not supported yet")
    for g in groups:
        if g == "":
            raise InvalidArgument("--group-add: a group name or ID cannot be empty")
    return tuple(groups)


def _detach_keys(text: str | None) -> str | None:
    if text is None:
        return None
    parse_detach_keys(text)
    return text


def _labels(v: _Values) -> dict[str, str]:
    labels: dict[str, str] = {}
    for path in v.texts("label-file"):
        for line in read_lines(path, "unable to process labels"):
            key, eq, value = line.partition("=")
            if key == "":
                raise InvalidArgument(
                    f"unable to process labels: invalid environment variable: {go_quote(line)}"
                )
            if " " in key or "\t" in key:
                raise InvalidArgument(
                    f"unable to process labels: name {go_quote(key)} has white spaces, poorly "
                    "formatted name"
                )
            if eq:
                labels[key] = value
            elif key in os.environ:
                labels[key] = os.environ[key]
    for label in v.texts("label"):
        key, _, value = label.partition("=")
        if key == "":
            raise InvalidArgument(
                f"unable to process labels: invalid label format: {go_quote(label)}"
            )
        labels[key] = value
    return labels


def _annotations(texts: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for text in texts:
        key, eq, value = text.partition("=")
        if not eq or key == "":
            raise InvalidArgument("annotations must be formatted KEY=VALUE")
        out[key] = value
    return out


def _capabilities(names: list[str]) -> tuple[str, ...]:
    out = []
    for name in names:
        upper = name.upper()
        cap = upper if upper == "ALL" or upper.startswith("CAP_") else "CAP_" + upper
        if cap != "ALL" and cap not in CAPABILITIES:
            raise InvalidArgument(f"{go_quote(cap)}: unknown capability")
        out.append(cap)
    return tuple(out)


@record
class _Security:
    no_new_privileges: bool = False
    seccomp: str | None = None
    mask: tuple[str, ...] = ()
    unmask: tuple[str, ...] = ()


def _security(v: _Values) -> _Security:
    nnp = False
    seccomp: str | None = None
    mask: list[str] = []
    unmask: list[str] = []
    for opt in v.texts("security-opt"):
        if opt == "no-new-privileges":
            nnp = True
            continue
        key, eq, value = opt.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid --security-opt 1: {go_quote(opt)}")
        if key == "no-new-privileges":
            if value not in ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE",
                             "false", "False"):  # fmt: skip
                raise InvalidArgument(f"invalid --security-opt 2: {go_quote(opt)}")
            nnp = value in ("1", "t", "T", "TRUE", "true", "True")
        elif key == "seccomp":
            seccomp = value if value == "unconfined" else _seccomp_file(value)
        elif key == "mask":
            mask += [p for p in value.split(":") if p]
        elif key == "unmask":
            unmask += [p for p in value.split(":") if p]
        elif key == "label":
            continue  # SELinux labels: accepted, and meaningless here (no SELinux)
        elif key == "apparmor":
            if value != "unconfined":
                raise NotSupported(
                    f'apparmor profile "{value}" specified, but AppArmor is not supported yet'
                )
        elif key == "proc-opts":
            raise NotSupported("'--security-opt proc-opts' is not supported yet")
        else:
            raise InvalidArgument(f"invalid --security-opt 2: {go_quote(opt)}")
    return _Security(no_new_privileges=nnp, seccomp=seccomp, mask=tuple(mask), unmask=tuple(unmask))


def _seccomp_file(path: str) -> str:
    full = os.path.abspath(path)
    try:
        with open(full, "rb"):
            pass
    except OSError as e:
        raise InvalidArgument(
            f"opening seccomp profile failed: open {path}: {go_errno_text(e)}"
        ) from None
    return full


def _sysctls(texts: list[str], network: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for text in texts:
        key, eq, value = text.partition("=")
        if not eq:
            raise InvalidArgument(
                f"{text} is invalid, sysctl values must be in the form of KEY=VALUE"
            )
        if "=" in value or key.strip() != key or value.strip() != value:
            raise InvalidArgument(f"'{text}' is invalid, extra spaces found")
        if key not in _SYSCTLS and not key.startswith(("net.", "fs.mqueue.")):
            raise InvalidArgument(f"sysctl '{key}' is not allowed")
        if key.startswith("net.") and network == "host":
            raise InvalidArgument(
                f"sysctl {text} can't be set since Network Namespace set to host: "
                "invalid argument"
            )
        out[key] = value
    return out


def _stop_signal(text: str | None) -> int | None:
    return None if text is None else parse_signal(text)


def _stop_timeout(text: str | None) -> int:
    default = _DEFAULT.stop_timeout
    return default if text is None else parse_uint(text, "--stop-timeout")


def _restart_text(v: _Values) -> str:
    return v.text("restart") or ""


def _restart(v: _Values) -> tuple[str, int]:
    text = _restart_text(v)
    if text == "":
        return "no", 0
    parts = text.split(":")
    if len(parts) > 2:
        raise InvalidArgument("invalid restart policy: may specify retries at most once")
    retries = 0
    if len(parts) == 2:
        if parts[0].lower() != "on-failure":
            raise InvalidArgument(
                "restart policy retries can only be specified with on-failure restart policy"
            )
        if not is_decimal(parts[1]):
            raise InvalidArgument(
                f"parsing restart policy retry count: strconv.Atoi: parsing "
                f"{go_quote(parts[1])}: invalid syntax"
            )
        retries = int(parts[1])
        if retries < 0:
            raise InvalidArgument(
                "must specify restart policy retry count as a number greater than 0"
            )
    if parts[0] not in ("no", "on-failure", "always", "unless-stopped"):
        raise InvalidArgument(
            f"running container create option: {go_quote(parts[0])} is not a valid restart "
            "policy: invalid argument"
        )
    return parts[0], retries


def _healthcheck(v: _Values) -> Healthcheck | None:
    cmd = v.text("health-cmd")
    if v.flag("no-healthcheck"):
        if cmd:
            raise InvalidArgument("cannot specify both --no-healthcheck and --health-cmd")
        return Healthcheck(test=("NONE",))

    def seconds(flag: str, default: float) -> float:
        text = v.text(flag)
        if text is None:  # podman's default ("30s", "0s"): no need to load the parser
            return default
        if flag == "health-interval" and text == "disable":
            return 0.0
        try:
            return parse_duration(text) / 1e9
        except InvalidArgument as e:
            raise InvalidArgument(
                f"invalid healthcheck-{flag.removeprefix('health-')}: {e}"
            ) from None

    interval = seconds("health-interval", 30.0)
    timeout = seconds("health-timeout", 30.0)
    start_period = seconds("health-start-period", 0.0)
    retries_text = v.text("health-retries")
    retries = 3 if retries_text is None else parse_uint(retries_text, "--health-retries")
    if not cmd:
        return None
    if interval < 0:
        raise InvalidArgument("healthcheck-interval must be 0 seconds or greater")
    if retries < 1:
        raise InvalidArgument("healthcheck-retries must be greater than 0")
    if timeout <= 0:
        raise InvalidArgument("healthcheck-timeout must be at least 1 second")
    if start_period < 0:
        raise InvalidArgument("healthcheck-start-period must be 0 seconds or greater")
    return Healthcheck(
        test=_health_test(cmd),
        interval=interval,
        timeout=timeout,
        start_period=start_period,
        retries=retries,
    )


def _health_test(cmd: str) -> tuple[str, ...]:
    """podman's reading of --health-cmd: a JSON array is exec form (CMD), anything else runs in
    a shell (CMD-SHELL); "none" disables the image's healthcheck."""
    try:
        parsed = jsoncodec.loads(cmd) if _may_be_json_array(cmd) else None
        words = (
            parsed if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed) else None
        )
    except ValueError:
        words = None
    if words is None:
        first, _, rest = cmd.partition(" ")
        if first == "none" and not rest:
            return ("NONE",)
        if first == "CMD":
            return ("CMD", *rest.split())
        if first == "CMD-SHELL":
            return ("CMD-SHELL", rest)
        return ("CMD-SHELL", cmd)
    if not words:
        raise InvalidArgument("must define a healthcheck command for all healthchecks")
    if words[0] in ("CMD", "CMD-SHELL", "NONE"):
        return tuple(words)
    if words[0] == "none":
        return ("NONE",)
    return ("CMD", *words) if len(words) > 1 else ("CMD-SHELL", words[0])


def _log_driver(text: str | None) -> str:
    if text is None or text == "":
        return _DEFAULT.log_driver
    if text in ("k8s-file", "json-file", "none"):
        return text
    if text == "journald":
        raise NotSupported(
            "the journald log driver is not supported: there is no systemd journal on this "
            "host; use --log-driver k8s-file (the default), json-file or none"
        )
    if text == "passthrough":
        raise NotSupported("'--log-driver passthrough' is not supported yet")
    raise InvalidArgument("running container create option: invalid log driver: invalid argument")


def _log_max_size(opts: list[str]) -> int:
    size = 0
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq:
            raise InvalidArgument(f"invalid log option {go_quote(opt)}")
        if key.lower() == "max-size":
            size = parse_human_size(value)
        elif value == "":
            raise InvalidArgument("invalid log option: invalid argument")
        else:
            raise NotSupported(
                f"'--log-opt {key}' is not supported yet (only max-size is): the log is "
                "written to the container's own directory"
            )
    return size


def _tz(text: str | None) -> str | None:
    if not text:
        return None
    if text != "local":
        path = os.path.join("/usr/share/zoneinfo", text)
        try:
            os.stat(path)
        except OSError as e:
            raise InvalidArgument(
                f"running container create option: stat {path}: {go_errno_text(e)}"
            ) from None
    return text


def _namespace(v: _Values, kind: str, modes: tuple[str, ...]) -> str:
    text = v.text(kind)
    if text is None or text in ("", "private"):
        return ""
    if text in modes:
        return text
    for prefix, what in (
        ("container:", "name or ID or a container"),
        ("ns:", "a path to a namespace"),
    ):
        if text.startswith(prefix):
            if text == prefix:
                raise InvalidArgument(f'must provide {what} when specifying "{prefix}"')
            return text
    if text == "pod":  # the pod's infra container's namespace of that kind (engine/pods.py)
        if not v.text("pod") and not v.text("pod-id-file"):
            from pypod.engine.rootless import NOT_IN_POD

            raise InvalidArgument(NOT_IN_POD)
        return text
    raise InvalidArgument(f"unrecognized namespace mode {text} passed")


def _pod(text: str | None, id_file: str | None = None) -> str:
    """`--pod NAME|ID`, `--pod new:NAME` or `--pod-id-file FILE` (the pod is looked up by the
    engine when it creates)."""
    if id_file:
        if text:
            raise InvalidArgument("--pod and --pod-id-file cannot be set together")
        try:
            with open(id_file) as f:
                text = f.read().strip()
        except OSError as e:
            raise InvalidArgument(f"reading pod ID file: {e.strerror}: {id_file}") from None
        if not text:
            raise InvalidArgument(f"reading pod ID file: {id_file} is empty")
    if text is None or text == "":
        return ""
    if text == "new:":
        raise InvalidArgument("new pod name must be at least one character")
    return text


def _userns(v: _Values) -> dict[str, Any]:
    """`--userns`, `--uidmap`, `--gidmap`, checked now (errors before anything is made)."""
    mode, uidmap, gidmap = (
        v.text("userns") or "",
        tuple(v.texts("uidmap")),
        tuple(v.texts("gidmap")),
    )
    pod = v.text("pod")
    if v.text("userns") is not None and pod and not pod.startswith("new:"):
        raise InvalidArgument("--userns and --pod cannot be set together")  # podman's, first
    if mode or uidmap or gidmap:
        from pypod.engine.rootless import USERNS_AND_MAPS, userns_plan

        if v.text("userns") is not None and (uidmap or gidmap):  # even `--userns=`, as podman
            raise InvalidArgument(USERNS_AND_MAPS)
        userns_plan(mode, uidmap, gidmap)
    return {"userns": mode, "uidmap": uidmap, "gidmap": gidmap}


def _runtime(text: str | None) -> str:
    if not text:
        raise InvalidArgument("--runtime: name an OCI runtime (pypod, runc, crun or a path)")
    return text


def _pull(text: str | None) -> str:
    if text is None:
        return "missing"
    policy = _PULL_POLICIES.get(text)
    if policy is None:
        raise InvalidArgument(f"unsupported pull policy {go_quote(text)}")
    return policy


def _cgroup_parent(v: _Values) -> str | None:
    """`--cgroup-parent`, with `--cgroups`: "enabled" and "no-conmon" change nothing (pypod's
    monitor is never in the container's cgroup: it stays where `pypod` ran, as conmon does
    with no-conmon); "split": the parent is chosen when the container starts
    (engine/cgroup_split.py); "disabled" is not supported."""
    parent = v.text("cgroup-parent") or None
    mode = v.text("cgroups")
    if mode is None or mode in ("enabled", "no-conmon"):
        return parent
    if mode == "split":
        if parent:
            raise InvalidArgument(
                "cannot specify --cgroup-mode=split with a cgroup-parent: invalid argument"
            )
        return None  # the own cgroup, when it starts (`cgroups`)
    if mode == "disabled":
        raise NotSupported("'--cgroups=disabled' is not supported yet")
    raise InvalidArgument(
        f"running container create option: invalid cgroup mode {go_quote(mode)}: invalid argument"
    )


def _sdnotify(text: str | None) -> str:
    """`--sdnotify`: "container" (a socket of its own passed into the container, what the
    container sends relayed), "conmon", "ignore" (engine/sdnotify.py); "" when not given
    (podman's default: as "container")."""
    if text is None or text in ("container", "conmon", "ignore"):
        return text or ""
    raise InvalidArgument(
        f"invalid config provided: invalid argument: invalid sdnotify value {go_quote(text)}: "
        "must be container, conmon or ignore"
    )


def _cidfile(text: str | None) -> str | None:
    if text is None:
        return None
    if os.path.lexists(text):
        raise InvalidArgument(
            f"container id file exists. Ensure another container is not using it or delete {text}"
        )
    return text


def _platform(v: _Values) -> str | None:
    platform = v.text("platform")
    os_, arch, variant = v.text("os"), v.text("arch"), v.text("variant")
    if platform and (os_ or arch):
        raise InvalidArgument("--platform option can not be specified with --arch or --os")
    if platform:
        return platform
    if not (os_ or arch or variant):
        return None
    text = f"{os_ or 'linux'}/{arch or 'amd64'}"
    return f"{text}/{variant}" if variant else text
