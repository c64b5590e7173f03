"""Quadlet: `.container`, `.volume`, `.network`, `.pod` and `.kube` files turned into service
units, as podman's quadlet (podman 4.4 and later; podman 4.3 has none) turns them, with the
keys podman documents in podman-systemd.unit(5).

A source file is a systemd unit with one group of its own (`[Container]`, `[Volume]`...). The
result is the same unit with that group renamed `X-...` (systemd ignores it), `SourcePath=` and
`RequiresMountsFor=%t/containers` added to `[Unit]`, and a `[Service]` that creates, runs and
removes the resource through pypod.  Service names: `NAME.service` for `.container` and
`.kube`, `NAME-volume`, `NAME-network`, `NAME-pod.service` for the others (`ServiceName=`
overrides); resources are named `systemd-NAME` unless `ContainerName=`, `VolumeName=`,
`NetworkName=` or `PodName=` say otherwise.

A key quadlet knows but pypod does not translate yet is refused by name (the file is skipped,
the others still convert), never dropped silently.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence

from pypod.errors import InvalidArgument, NotSupported
from pypod.record import record

#: processing order: resources others refer to first
EXTENSIONS = {".volume": 2, ".network": 2, ".container": 4, ".kube": 4, ".pod": 5}
GROUPS = {".container": "Container", ".volume": "Volume", ".network": "Network", ".pod": "Pod",
          ".kube": "Kube"}  # fmt: skip
#: the system's and a user's search paths (podman's, in order of precedence)
SYSTEM_DIRS = ("/run/containers/systemd", "/etc/containers/systemd",
               "/usr/share/containers/systemd")  # fmt: skip

# --- the keys of each group: quadlet's keys pypod translates, and those it knows but refuses ---
_CONTAINER_STRING = {"Timezone": "--tz", "PidsLimit": "--pids-limit", "ShmSize": "--shm-size",
                     "Entrypoint": "--entrypoint", "WorkingDir": "--workdir", "IP": "--ip",
                     "IP6": "--ip6", "HostName": "--hostname", "StopSignal": "--stop-signal",
                     "StopTimeout": "--stop-timeout", "Pull": "--pull", "Memory": "--memory",
                     "User": "--user", "Group": "", "UserNS": "--userns",
                     "HealthCmd": "--health-cmd", "HealthInterval": "--health-interval",
                     "HealthRetries": "--health-retries", "HealthTimeout": "--health-timeout",
                     "HealthStartPeriod": "--health-start-period",
                     "HealthOnFailure": "--health-on-failure", "LogDriver": "--log-driver",
                     "CgroupsMode": "--cgroups", "SeccompProfile": ""}  # fmt: skip
_CONTAINER_ALL = {"NetworkAlias": "--network-alias", "Ulimit": "--ulimit", "DNS": "--dns",
                  "DNSOption": "--dns-option", "DNSSearch": "--dns-search",
                  "GroupAdd": "--group-add", "AddHost": "--add-host", "Tmpfs": "--tmpfs",
                  "AddDevice": "--device", "Sysctl": "--sysctl", "LogOpt": "--log-opt",
                  "ExposeHostPort": "--expose", "PublishPort": "--publish",
                  "EnvironmentFile": "--env-file", "Secret": "--secret", "Mount": "--mount",
                  "Mask": "", "Unmask": ""}  # fmt: skip
_CONTAINER_BOOL = {"RunInit": "--init", "EnvironmentHost": "--env-host",
                   "ReadOnlyTmpfs": "--read-only-tmpfs", "ReadOnly": "--read-only",
                   "NoNewPrivileges": ""}  # fmt: skip
_KEYVAL = {"Environment": "--env", "Label": "--label", "Annotation": "--annotation"}
_CONTAINER_KEYS = {*_CONTAINER_STRING, *_CONTAINER_ALL, *_CONTAINER_BOOL, *_KEYVAL, "Image",
                   "ContainerName", "Exec", "Network", "Volume", "Pod", "PodmanArgs",
                   "GlobalArgs", "AddCapability", "DropCapability", "Notify", "ServiceName",
                   "AutoUpdate", "VolatileTmp"}  # fmt: skip
#: quadlet's keys pypod's quadlet does not translate yet
_KNOWN_UNSUPPORTED = {"Rootfs", "UIDMap", "GIDMap", "SubUIDMap", "SubGIDMap", "RemapUid",
                      "RemapGid", "RemapUidSize", "RemapUsers", "SecurityLabelDisable",
                      "SecurityLabelFileType", "SecurityLabelLevel", "SecurityLabelNested",
                      "SecurityLabelType", "ContainersConfModule", "ReloadCmd", "ReloadSignal",
                      "Retry", "RetryDelay", "StartWithPod", "HealthStartupCmd",
                      "HealthStartupInterval", "HealthStartupRetries", "HealthStartupSuccess",
                      "HealthStartupTimeout", "HealthLogDestination", "HealthMaxLogCount",
                      "HealthMaxLogSize", "Copy", "Device", "Type", "IPAMDriver",
                      "InterfaceName", "NetworkDeleteOnStop", "ExitCodePropagation",
                      "KubeDownForce", "SetWorkingDirectory"}  # fmt: skip
_VOLUME_KEYS = {"VolumeName", "Driver", "Label", "Options", "User", "Group", "Image",
                "PodmanArgs", "GlobalArgs", "ServiceName"}  # fmt: skip
_NETWORK_KEYS = {"NetworkName", "Driver", "Label", "Options", "DNS", "DisableDNS", "Gateway",
                 "IPRange", "IPv6", "Internal", "Subnet", "PodmanArgs", "GlobalArgs",
                 "ServiceName"}  # fmt: skip
_POD_KEYS = {"PodName", "Network", "NetworkAlias", "PublishPort", "Volume", "AddHost", "DNS",
             "DNSOption", "DNSSearch", "HostName", "IP", "IP6", "Label", "ExitPolicy",
             "PodmanArgs", "GlobalArgs", "ServiceName"}  # fmt: skip
_KUBE_KEYS = {"Yaml", "ConfigMap", "Network", "PublishPort", "UserNS", "LogDriver", "LogOpt",
              "AutoUpdate", "PodmanArgs", "GlobalArgs", "ServiceName"}  # fmt: skip
_KEYS = {"Container": _CONTAINER_KEYS, "Volume": _VOLUME_KEYS, "Network": _NETWORK_KEYS,
         "Pod": _POD_KEYS, "Kube": _KUBE_KEYS}  # fmt: skip


# --- unit files -------------------------------------------------------------------------------
class UnitFile:
    """A systemd unit: groups in order, each with its (key, value) lines in order."""

    def __init__(self, path: str, groups: list[tuple[str, list[tuple[str, str]]]]) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self.groups = groups

    def group(self, name: str) -> list[tuple[str, str]]:
        for g, entries in self.groups:
            if g == name:
                return entries
        entries = []
        self.groups.append((name, entries))
        return entries

    def has_group(self, name: str) -> bool:
        return any(g == name for g, _ in self.groups)

    def all(self, group: str, key: str) -> list[str]:
        """Every value of `key` (an empty value resets the list, as systemd does)."""
        out: list[str] = []
        for g, entries in self.groups:
            if g == group:
                for k, v in entries:
                    if k == key:
                        out = [] if v == "" else [*out, v]
        return out

    def last(self, group: str, key: str) -> str | None:
        found = self.all(group, key)
        return found[-1] if found else None

    def add(self, group: str, key: str, value: str) -> None:
        self.group(group).append((key, value))

    def set(self, group: str, key: str, value: str) -> None:
        entries = [(k, v) for k, v in self.group(group) if k != key]
        entries.append((key, value))
        self.group(group)[:] = entries

    def rename(self, old: str, new: str) -> None:
        self.groups = [(new if g == old else g, e) for g, e in self.groups]

    def render(self, header: str) -> str:
        parts = [header]
        for name, entries in self.groups:
            parts.append(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in entries))
        return "\n".join(parts)


def parse_unit(text: str, path: str) -> UnitFile:
    """systemd's unit syntax: `[Group]`, `Key=Value`, `#`/`;` comments, a trailing `\\`
    continues the line."""
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    current: list[tuple[str, str]] | None = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise InvalidArgument(f"{path}:{number}: invalid group header {line!r}")
            current = []
            groups.append((line[1:-1], current))
            continue
        key, eq, value = line.partition("=")
        if not eq or current is None:
            raise InvalidArgument(f"{path}:{number}: expected KEY=VALUE in a group: {line!r}")
        current.append((key.strip(), value.strip()))
    return UnitFile(path, groups)


def _words(value: str) -> list[str]:
    return shlex.split(value)


def _word(word: str) -> str:
    """One word of a command line quadlet writes: quoted when systemd would split it;
    specifiers (`%N`, `%t`) and `$VARIABLES` stay live, as quadlet leaves them."""
    if word and not any(c in word for c in " \t\n\"'\\"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cmdline(args: Sequence[str]) -> str:
    return " ".join(_word(a) if i else a for i, a in enumerate(args))


def _bool(value: str | None) -> bool | None:
    if value is None:
        return None
    low = value.lower()
    if low in ("1", "yes", "true", "on"):
        return True
    if low in ("0", "no", "false", "off"):
        return False
    raise InvalidArgument(f"invalid boolean {value!r}")


# --- names ------------------------------------------------------------------------------------
@record
class Info:
    """What other files may refer to: a unit's service and its resource's name."""

    service: str
    resource: str
    #: a pod's: the services of the containers in it
    containers: tuple[str, ...] = ()


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]


def unit_info(unit: UnitFile) -> Info:
    ext = os.path.splitext(unit.name)[1]
    group = GROUPS[ext]
    stem = _stem(unit.name)
    custom = unit.last(group, "ServiceName")
    suffix = {".volume": "-volume", ".network": "-network", ".pod": "-pod"}.get(ext, "")
    service = custom or f"{stem}{suffix}"
    key = {".container": "ContainerName", ".volume": "VolumeName", ".network": "NetworkName",
           ".pod": "PodName", ".kube": ""}[ext]  # fmt: skip
    resource = (unit.last(group, key) if key else None) or f"systemd-{stem}"
    if ext == ".container" and not unit.last(group, "ContainerName"):
        resource = "systemd-%N"
    return Info(service=service, resource=resource)


# --- conversion -------------------------------------------------------------------------------
class _Converter:
    def __init__(self, unit: UnitFile, infos: Mapping[str, Info], executable: str) -> None:
        self.unit = unit
        self.infos = infos
        self.exe = executable
        self.ext = os.path.splitext(unit.name)[1]
        self.group = GROUPS[self.ext]
        self.out = UnitFile(unit.path, [(g, list(e)) for g, e in unit.groups])

    def check_keys(self) -> None:
        allowed = _KEYS[self.group]
        for key, _ in self.unit.group(self.group):
            if key in allowed:
                continue
            if key in _KNOWN_UNSUPPORTED:
                raise NotSupported(
                    f"{self.unit.path}: key {key!r} in group [{self.group}] is not supported "
                    "yet by pypod's quadlet"
                )
            raise InvalidArgument(f"unsupported key '{key}' in group '{self.group}' in "
                                  f"{self.unit.path}")  # fmt: skip

    def base(self) -> list[str]:
        args = [self.exe]
        for value in self.unit.all(self.group, "GlobalArgs"):
            args += _words(value)
        return args

    def tail(self, args: list[str]) -> None:
        for value in self.unit.all(self.group, "PodmanArgs"):
            args += _words(value)

    def begin(self) -> None:
        self.out.rename(self.group, f"X-{self.group}")
        if self.ext in (".container", ".kube", ".pod"):
            self.out.add("Unit", "Wants", "network-online.target")
            self.out.add("Unit", "After", "network-online.target")
        self.out.add("Unit", "SourcePath", self.unit.path)
        self.out.add("Unit", "RequiresMountsFor", "%t/containers")

    def depend(self, ref: str, bind: bool = False) -> Info:
        """A reference to another quadlet file (`data.volume`): its Info, and the ordering."""
        info = self.infos.get(ref)
        if info is None:
            raise InvalidArgument(f"{self.unit.path}: requested quadlet {ref!r} was not found")
        self.out.add("Unit", "BindsTo" if bind else "Requires", f"{info.service}.service")
        self.out.add("Unit", "After", f"{info.service}.service")
        return info

    def string_keys(self, args: list[str], table: Mapping[str, str]) -> None:
        for key, flag in table.items():
            value = self.unit.last(self.group, key)
            if value is not None and flag:
                args += [flag, value]

    def all_keys(self, args: list[str], table: Mapping[str, str]) -> None:
        for key, flag in table.items():
            if not flag:
                continue
            for value in self.unit.all(self.group, key):
                for word in _words(value) if key not in ("Mount",) else [value]:
                    args += [flag, word]

    def keyvals(self, args: list[str], table: Mapping[str, str]) -> None:
        for key, flag in table.items():
            for value in self.unit.all(self.group, key):
                for word in _words(value):
                    args += [flag, word]

    def networks(self, args: list[str]) -> None:
        for value in self.unit.all(self.group, "Network"):
            name, sep, opts = value.partition(":")
            if name.endswith(".network"):
                name = self.depend(name).resource
            args += ["--network", f"{name}{sep}{opts}"]

    def volumes(self, args: list[str]) -> None:
        for value in self.unit.all(self.group, "Volume"):
            source, sep, rest = value.partition(":")
            if source.endswith(".volume"):
                source = self.depend(source).resource
            elif source.startswith("."):
                source = os.path.normpath(os.path.join(os.path.dirname(self.unit.path), source))
            args += ["-v", f"{source}{sep}{rest}"]

    def service(self, key: str, value: str) -> None:
        self.out.add("Service", key, value)

    def service_default(self, key: str, value: str) -> None:
        if self.unit.last("Service", key) is None:
            self.service(key, value)

    # --- the kinds ------------------------------------------------------------------------
    def container(self) -> None:
        g = self.group
        image = self.unit.last(g, "Image")
        if not image:
            raise InvalidArgument(f"{self.unit.path}: no Image key specified")
        name = unit_info(self.unit).resource
        self.service("Environment", "PODMAN_SYSTEMD_UNIT=%n")
        kill = self.unit.last("Service", "KillMode")
        if kill is None:
            self.service("KillMode", "mixed")
        elif kill not in ("mixed", "control-group"):
            raise InvalidArgument(f"{self.unit.path}: invalid KillMode '{kill}'")
        stop = [*self.base(), "rm", "-v", "-f", "-i", name]
        self.service("ExecStop", _cmdline(stop))
        self.service("ExecStopPost", "-" + _cmdline(stop))
        args = [*self.base(), "run", "--name", name, "--replace", "--rm"]
        self.service("Delegate", "yes")
        if self.unit.last(g, "CgroupsMode") is None:
            args.append("--cgroups=split")
        self.string_keys(args, _CONTAINER_STRING)
        self.all_keys(args, {k: v for k, v in _CONTAINER_ALL.items()
                             if k not in ("PublishPort", "ExposeHostPort")})  # fmt: skip
        for key, flag in _CONTAINER_BOOL.items():
            on = _bool(self.unit.last(g, key))
            if on is not None and flag:
                args.append(flag if on else f"{flag}=false")
        self.networks(args)
        kind = self.unit.last("Service", "Type")
        if kind is not None and kind not in ("notify", "oneshot"):
            raise InvalidArgument(f"{self.unit.path}: invalid service Type '{kind}'")
        if kind != "oneshot":
            notify = self.unit.last(g, "Notify")
            if notify is not None and notify.lower() == "healthy":
                args.append("--sdnotify=healthy")
            elif _bool(notify):
                args.append("--sdnotify=container")
            else:
                args.append("--sdnotify=conmon")
            self.out.set("Service", "Type", "notify")
            self.out.set("Service", "NotifyAccess", "all")
            args.append("-d")
        self.service_default("SyslogIdentifier", "%N")
        if _bool(self.unit.last(g, "NoNewPrivileges")):
            args.append("--security-opt=no-new-privileges")
        seccomp = self.unit.last(g, "SeccompProfile")
        if seccomp is not None:
            args += ["--security-opt", f"seccomp={seccomp}"]
        for value in self.unit.all(g, "DropCapability"):
            args += [a for w in _words(value) for a in ("--cap-drop", w.lower())]
        for value in self.unit.all(g, "AddCapability"):
            args += [a for w in _words(value) for a in ("--cap-add", w.lower())]
        if _bool(self.unit.last(g, "VolatileTmp")) and not _bool(self.unit.last(g, "ReadOnly")):
            args += ["--tmpfs", "/tmp:rw,size=512M,mode=1777"]
        group = self.unit.last(g, "Group")
        if group is not None:
            user = self.unit.last(g, "User")
            if user is None:
                raise InvalidArgument(f"{self.unit.path}: Group set without User")
            idx = args.index("--user")
            args[idx + 1] = f"{user}:{group}"
        self.volumes(args)
        update = self.unit.last(g, "AutoUpdate")
        if update:
            args += ["--label", f"io.containers.autoupdate={update}"]
        for port in self.unit.all(g, "ExposeHostPort"):
            args += ["--expose", port.strip()]
        for port in self.unit.all(g, "PublishPort"):
            args += ["--publish", port.strip()]
        self.keyvals(args, _KEYVAL)
        for key, what in (("Mask", "mask"), ("Unmask", "unmask")):
            for paths in self.unit.all(g, key):
                args += [a for w in _words(paths) for a in ("--security-opt", f"{what}={w}")]
        pod = self.unit.last(g, "Pod")
        if pod:
            if not pod.endswith(".pod"):
                raise InvalidArgument(f"{self.unit.path}: pod {pod!r} is not Quadlet based")
            info = self.depend(pod, bind=True)
            args.append(f"--pod-id-file=%t/{info.service}.pod-id")
        self.tail(args)
        if image.endswith(".image") or image.endswith(".build"):
            raise NotSupported(f"{self.unit.path}: '.image' and '.build' units are not supported "
                               "yet by pypod's quadlet")  # fmt: skip
        args.append(image)
        exec_value = self.unit.last(g, "Exec")
        if exec_value:
            args += _words(exec_value)
        self.service("ExecStart", _cmdline(args))

    def volume(self) -> None:
        g = self.group
        name = unit_info(self.unit).resource
        args = [*self.base(), "volume", "create", "--ignore"]
        driver = self.unit.last(g, "Driver")
        if driver:
            args += ["--driver", driver]
        opts: list[str] = []
        user, group = self.unit.last(g, "User"), self.unit.last(g, "Group")
        if user:
            opts.append(f"uid={user}")
        if group:
            opts.append(f"gid={group}")
        options = self.unit.last(g, "Options")
        if options:
            opts.append(options)
        if opts:
            args += ["--opt", f"o={','.join(opts)}"]
        image = self.unit.last(g, "Image")
        if image:
            args += ["--opt", f"image={image}"]
        self.keyvals(args, {"Label": "--label"})
        self.tail(args)
        args.append(name)
        self.service("ExecStart", _cmdline(args))
        self._oneshot()

    def network(self) -> None:
        g = self.group
        name = unit_info(self.unit).resource
        args = [*self.base(), "network", "create", "--ignore"]
        for key, flag in (("DisableDNS", "--disable-dns"), ("Internal", "--internal"),
                          ("IPv6", "--ipv6")):  # fmt: skip
            if _bool(self.unit.last(g, key)):
                args.append(flag)
        driver = self.unit.last(g, "Driver")
        if driver:
            args += ["--driver", driver]
        for value in self.unit.all(g, "DNS"):
            args += ["--dns", value]
        subnets = self.unit.all(g, "Subnet")
        gateways, ranges = self.unit.all(g, "Gateway"), self.unit.all(g, "IPRange")
        if not subnets and (gateways or ranges):
            raise InvalidArgument(f"{self.unit.path}: cannot set gateway or range without subnet")
        if len(gateways) > len(subnets) or len(ranges) > len(subnets):
            raise InvalidArgument(f"{self.unit.path}: more gateways or ranges than subnets")
        for i, subnet in enumerate(subnets):
            args += ["--subnet", subnet]
            if i < len(gateways):
                args += ["--gateway", gateways[i]]
            if i < len(ranges):
                args += ["--ip-range", ranges[i]]
        self.keyvals(args, {"Options": "--opt", "Label": "--label"})
        self.tail(args)
        args.append(name)
        self.service("ExecStart", _cmdline(args))
        self._oneshot()

    def _oneshot(self) -> None:
        self.service_default("SyslogIdentifier", "%N")
        self.service_default("Type", "oneshot")
        self.service_default("RemainAfterExit", "yes")

    def pod(self, info: Info) -> None:
        g = self.group
        for service in info.containers:
            self.out.add("Unit", "Wants", f"{service}.service")
            self.out.add("Unit", "Before", f"{service}.service")
        pid, id_file = "%t/%N.pid", "%t/%N.pod-id"
        base = self.base()
        self.service("ExecStart", _cmdline([*base, "pod", "start", f"--pod-id-file={id_file}"]))
        self.service("ExecStop", _cmdline([*base, "pod", "stop", f"--pod-id-file={id_file}",
                                           "--ignore", "--time=10"]))  # fmt: skip
        self.service("ExecStopPost", _cmdline([*base, "pod", "rm", f"--pod-id-file={id_file}",
                                               "--ignore", "--force"]))  # fmt: skip
        policy = self.unit.last(g, "ExitPolicy") or "stop"
        args = [*base, "pod", "create", f"--infra-conmon-pidfile={pid}",
                f"--pod-id-file={id_file}", f"--exit-policy={policy}", "--replace"]  # fmt: skip
        self.string_keys(args, {"HostName": "--hostname", "IP": "--ip", "IP6": "--ip6"})
        self.all_keys(args, {"NetworkAlias": "--network-alias", "AddHost": "--add-host",
                             "DNS": "--dns", "DNSOption": "--dns-option",
                             "DNSSearch": "--dns-search", "PublishPort": "--publish"})  # fmt: skip
        self.networks(args)
        self.volumes(args)
        self.keyvals(args, {"Label": "--label"})
        self.tail(args)
        args.append(f"--name={info.resource}")
        self.service("ExecStartPre", _cmdline(args))
        self.service("Environment", "PODMAN_SYSTEMD_UNIT=%n")
        self.service_default("Type", "forking")
        self.service_default("Restart", "on-failure")
        self.service("PIDFile", pid)

    def kube(self) -> None:
        g = self.group
        yaml = self.unit.last(g, "Yaml")
        if not yaml:
            raise InvalidArgument(f"{self.unit.path}: no Yaml key specified")
        if not os.path.isabs(yaml):
            yaml = os.path.normpath(os.path.join(os.path.dirname(self.unit.path), yaml))
        self.service("Environment", "PODMAN_SYSTEMD_UNIT=%n")
        kill = self.unit.last("Service", "KillMode")
        if kill is None:
            self.service("KillMode", "mixed")
        self.service_default("Type", "notify")
        self.service_default("NotifyAccess", "all")
        self.service_default("SyslogIdentifier", "%N")
        args = [*self.base(), "kube", "play", "--replace", "--service-container=true"]
        log_driver = self.unit.last(g, "LogDriver")
        if log_driver:
            args += ["--log-driver", log_driver]
        for value in self.unit.all(g, "LogOpt"):
            args += ["--log-opt", value]
        userns = self.unit.last(g, "UserNS")
        if userns:
            args += ["--userns", userns]
        self.networks(args)
        for value in self.unit.all(g, "ConfigMap"):
            path = value if os.path.isabs(value) else os.path.normpath(
                os.path.join(os.path.dirname(self.unit.path), value))  # fmt: skip
            args += ["--configmap", path]
        for value in self.unit.all(g, "PublishPort"):
            args += ["--publish", value.strip()]
        update = self.unit.last(g, "AutoUpdate")
        if update:
            args += ["--annotation", f"io.containers.autoupdate={update}"]
        self.tail(args)
        args.append(yaml)
        self.service("ExecStart", _cmdline(args))
        self.service("ExecStopPost", _cmdline([*self.base(), "kube", "down", yaml]))


def convert(unit: UnitFile, infos: Mapping[str, Info], executable: str) -> UnitFile:
    """The service unit for one quadlet file (`infos`: every file's Info, by file name)."""
    conv = _Converter(unit, infos, executable)
    if not unit.has_group(conv.group):
        raise InvalidArgument(f"{unit.path}: no [{conv.group}] group")
    conv.check_keys()
    conv.begin()
    if conv.ext == ".container":
        conv.container()
    elif conv.ext == ".volume":
        conv.volume()
    elif conv.ext == ".network":
        conv.network()
    elif conv.ext == ".kube":
        conv.kube()
    else:
        conv.pod(infos[unit.name])
    return conv.out


# --- the generator ----------------------------------------------------------------------------
def unit_dirs(user: bool, environ: Mapping[str, str], uid: int) -> list[str]:
    """Where the files are looked for: `QUADLET_UNIT_DIRS` (colon-separated) when set, else
    the user's (`~/.config/containers/systemd`, `/etc/containers/systemd/users/UID`,
    `/etc/containers/systemd/users`) or the system's directories."""
    given = environ.get("QUADLET_UNIT_DIRS")
    if given:
        return [d for d in given.split(":") if d]
    if not user:
        return list(SYSTEM_DIRS)
    home = environ.get("HOME", "/")
    config = environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return [os.path.join(config, "containers", "systemd"),
            f"/etc/containers/systemd/users/{uid}", "/etc/containers/systemd/users"]  # fmt: skip


@record
class Result:
    """What a run produced: service file name -> text, the install links (target.wants ->
    service files) and the errors (one per file that did not convert)."""

    units: dict[str, str]
    wants: dict[str, tuple[str, ...]]
    errors: tuple[str, ...]


def find_files(dirs: Sequence[str]) -> list[str]:
    """The quadlet files of `dirs` (and their sub-directories); a name found first wins."""
    seen: dict[str, str] = {}
    for d in dirs:
        for root, subdirs, files in os.walk(d):
            subdirs.sort()
            for f in sorted(files):
                if os.path.splitext(f)[1] in EXTENSIONS and f not in seen:
                    seen[f] = os.path.join(root, f)
    return sorted(seen.values(), key=lambda p: (EXTENSIONS[os.path.splitext(p)[1]], p))


def generate(dirs: Sequence[str], executable: str, header: str) -> Result:
    """Convert every quadlet file of `dirs`."""
    units: list[UnitFile] = []
    errors: list[str] = []
    for path in find_files(dirs):
        try:
            with open(path, encoding="utf-8") as f:
                units.append(parse_unit(f.read(), path))
        except (OSError, UnicodeDecodeError, InvalidArgument) as e:
            errors.append(f"converting {path!r}, ignoring: {_without(str(e), path)}")
    infos = {u.name: unit_info(u) for u in units}
    for u in units:  # a pod's containers
        pod = u.last("Container", "Pod") if u.name.endswith(".container") else None
        if pod and pod in infos:
            p = infos[pod]
            service = infos[u.name].service
            infos[pod] = Info(service=p.service, resource=p.resource,
                              containers=(*p.containers, service))  # fmt: skip
    out: dict[str, str] = {}
    wants: dict[str, list[str]] = {}
    for u in units:
        try:
            converted = convert(u, infos, executable)
        except (InvalidArgument, NotSupported) as e:
            errors.append(f"converting {u.path!r}, ignoring: {_without(str(e), u.path)}")
            continue
        file_name = f"{infos[u.name].service}.service"
        out[file_name] = converted.render(header)
        for key in ("WantedBy", "RequiredBy", "UpheldBy"):
            suffix = {"WantedBy": "wants", "RequiredBy": "requires", "UpheldBy": "upholds"}[key]
            for value in u.all("Install", key):
                for target in _words(value):
                    wants.setdefault(f"{target}.{suffix}", []).append(file_name)
    return Result(units=out, wants={k: tuple(v) for k, v in wants.items()},
                  errors=tuple(errors))  # fmt: skip


def _without(message: str, path: str) -> str:
    return message.removeprefix(f"{path}: ")


def write(result: Result, output_dir: str) -> None:
    """The units into `output_dir` (a generator's normal directory) and the install symlinks."""
    from pypod.atomic import write_atomic

    os.makedirs(output_dir, exist_ok=True)
    for name, text in result.units.items():
        write_atomic(os.path.join(output_dir, name), text.encode(), mode=0o644)
    for where, names in result.wants.items():
        d = os.path.join(output_dir, where)
        os.makedirs(d, exist_ok=True)
        for name in names:
            link = os.path.join(d, name)
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(os.path.join("..", name), link)
