"""The flags of `pypod run` and `pypod create`: podman 4.3's, each with its kind.

Implemented flags are read by `run_flags.parse_run`; the podman flags pypod does not implement
are listed too (`NOT_IMPLEMENTED`), so that using one says "'--publish' is not supported yet"
rather than "unknown flag".
"""

from __future__ import annotations

from pypod.cli.engine.main import GLOBAL_FLAGS
from pypod.cli.flags import Flag

__all__ = ["CAPABILITIES", "CREATE_ONLY", "CSV_FLAGS", "GLOBALS", "NOT_IMPLEMENTED", "RUN_FLAGS",
           "RUN_ONLY", "UNSUPPORTED", "flags_for"]  # fmt: skip


def _f(names: str, value: bool = False, many: bool = False, help: str = "") -> Flag:
    """A flag from "name,n" (long name first, then the one-letter shorthand, if any)."""
    return Flag(tuple(names.split(",")), value, many, help)


#: podman's flags that pypod does not implement (name, takes a value, a list): refused when used
NOT_IMPLEMENTED: tuple[tuple[str, bool, bool], ...] = (
            ("attach,a", True, True), ("blkio-weight", True, False),
            ("blkio-weight-device", True, True), ("cgroup-conf", True, True),
            ("cgroupns", True, False), ("chrootdirs", True, True),
            ("cpu-period", True, False),
            ("cpu-quota", True, False), ("cpu-rt-period", True, False),
            ("cpu-rt-runtime", True, False), ("cpuset-mems", True, False),
            ("device-cgroup-rule", True, True), ("device-read-bps", True, True),
            ("device-read-iops", True, True), ("device-write-bps", True, True),
            ("device-write-iops", True, True), ("env-merge", True, True),
            ("health-on-failure", True, False),
            ("hostuser", True, True), ("image-volume", True, False), ("init-ctr", True, False),
            ("init-path", True, False), ("ip6", True, False),
            ("memory-swappiness", True, False),
            ("oom-kill-disable", False, False), ("passwd", False, False),
            ("passwd-entry", True, False), ("personality", True, False),
            ("pidfile", True, False),
            ("preserve-fds", True, False), ("rmi", False, False),
            ("rootfs", False, False),
            ("seccomp-policy", True, False), ("secret", True, True),
            ("subgidname", True, False), ("subuidname", True, False), ("systemd", True, False),
            ("timeout", True, False), ("umask", True, False),
            ("unsetenv", True, True), ("unsetenv-all", False, False),
)  # fmt: skip

#: every flag of `podman run` and `podman create` (4.3), implemented or refused clearly
RUN_FLAGS: tuple[Flag, ...] = (
    # what runs, and how it is attached
    _f("detach,d", help="Run container in background and print container ID"),
    _f("interactive,i", help="Keep STDIN open even if not attached"),
    _f("tty,t", help="Allocate a pseudo-TTY for container"),
    _f("rm", help="Remove container (and pod if created) after exit"),
    _f("replace", help="If a container with the same name exists, replace it"),
    _f("name", True, help="Assign a name to the container"),
    _f("pod", True, help="Run container in an existing pod (new:NAME: in a new pod)"),
    _f("pod-id-file", True, help="Read the pod ID from the file"),
    _f("entrypoint", True, help="Overwrite the default ENTRYPOINT of the image"),
    _f("workdir,w", True, help="Working directory inside the container"),
    _f("user,u", True, help="Username or UID (format: <name|uid>[:<group|gid>])"),
    _f("group-add", True, True, help="Add additional groups to the primary container process"),
    _f("hostname,h", True, help="Set container hostname"),
    _f("init", help="Run an init binary inside the container that forwards signals and reaps"),
    _f("detach-keys", True, help="Override the key sequence for detaching a container"),
    _f("sig-proxy", help="Proxy received signals to the process (default true)"),
    _f("quiet,q", help="Suppress output information when pulling images"),
    # environment and metadata
    _f("env,e", True, True, help="Set environment variables in container"),
    _f("env-file", True, True, help="Read in a file of environment variables"),
    _f("env-host", help="Use all current host environment variables in container"),
    _f("http-proxy", help="Set proxy environment variables in the container (default true)"),
    _f("label,l", True, True, help="Set metadata on container"),
    _f("label-file", True, True, help="Read in a line delimited file of labels"),
    _f("annotation", True, True, help="Add annotations to container (key=value)"),
    # storage
    _f("volume,v", True, True, help="Bind mount a volume into the container"),
    _f("mount", True, True, help="Attach a filesystem mount to the container"),
    _f("tmpfs", True, True, help="Mount a temporary filesystem (tmpfs) into a container"),
    _f("volumes-from", True, True, help="Mount volumes from the specified container(s)"),
    _f("read-only", help="Make containers root filesystem read-only"),
    _f("read-only-tmpfs", help="When running containers in read-only mode mount a read-write "
                               "tmpfs on /run, /tmp and /var/tmp (default true)"),  # fmt: skip
    _f("shm-size", True, help="Size of /dev/shm (format: <number>[<unit>])"),
    # lifecycle
    _f("restart", True, help="Restart policy to apply when a container exits"),
    _f("stop-signal", True, help="Signal to stop a container. Default is SIGTERM"),
    _f("stop-timeout", True, help="Timeout (in seconds) that containers stopped by user command "
                                  "have to exit"),  # fmt: skip
    _f("health-cmd", True, help="set a healthcheck command for the container ('none' disables)"),
    _f("health-interval", True, help="set an interval for the healthcheck (default \"30s\")"),
    _f("health-retries", True, help="the number of retries allowed before unhealthy (default 3)"),
    _f("health-start-period", True, help="the initialization time needed for a container to "
                                         "bootstrap (default \"0s\")"),  # fmt: skip
    _f("health-timeout", True, help="the maximum time allowed to complete the healthcheck "
                                    "(default \"30s\")"),  # fmt: skip
    _f("no-healthcheck", help="Disable healthchecks on container"),
    # resources
    _f("memory,m", True, help="Memory limit (format: <number>[<unit>])"),
    _f("memory-swap", True, help="Swap limit equal to memory plus swap: '-1' for unlimited swap"),
    _f("memory-reservation", True, help="Memory soft limit (format: <number>[<unit>])"),
    _f("cpus", True, help="Number of CPUs. The default is 0.000 which means no limit"),
    _f("cpu-shares,c", True, help="CPU shares (relative weight)"),
    _f("cpuset-cpus", True, help="CPUs in which to allow execution (0-3, 0,1)"),
    _f("pids-limit", True, help="Tune container pids limit (set -1 for unlimited)"),
    _f("ulimit", True, True, help="Ulimit options"),
    _f("oom-score-adj", True, help="Tune the host's OOM preferences (-1000 to 1000)"),
    _f("cgroup-parent", True, help="Optional parent cgroup for the container"),
    _f("cgroups", True, help="control container cgroup configuration (\"enabled\"|\"disabled\""
                             "|\"no-conmon\"|\"split\")"),  # fmt: skip
    # security
    _f("cap-add", True, True, help="Add capabilities to the container"),
    _f("cap-drop", True, True, help="Drop capabilities from the container"),
    _f("privileged", help="Give extended privileges to container"),
    _f("security-opt", True, True, help="Security Options"),
    _f("device", True, True, help="Add a host device to the container"),
    _f("sysctl", True, True, help="Sysctl options"),
    # logging, runtime, namespaces
    _f("log-driver", True, help="Logging driver for the container (k8s-file, json-file, none)"),
    _f("log-opt", True, True, help="Logging driver options"),
    _f("runtime", True, help="OCI runtime: pypod's own, or runc, crun or a path"),
    _f("network,net", True, True, help="Connect a container to a network"),
    _f("network-alias", True, True, help="Add network-scoped alias for the container"),
    _f("ip", True, help="Specify a static IPv4 address for the container"),
    _f("mac-address", True, help="Container MAC address (e.g. 92:d0:c6:0a:29:33)"),
    _f("publish,p", True, True, help="Publish a container's port, or a range of ports, "
                                     "to the host"),  # fmt: skip
    _f("publish-all,P", help="Publish all exposed ports to random ports on the host interface"),
    _f("expose", True, True, help="Expose a port or a range of ports"),
    _f("add-host", True, True, help="Add a custom host-to-IP mapping (host:ip)"),
    _f("dns", True, True, help="Set custom DNS servers"),
    _f("dns-option", True, True, help="Set custom DNS options"),
    _f("dns-search", True, True, help="Set custom DNS search domains"),
    _f("no-hosts", help="Do not create /etc/hosts within the container"),
    _f("tz", True, help="Set timezone in container"),
    _f("uts", True, help="UTS namespace to use"),
    _f("ipc", True, help="IPC namespace to use"),
    _f("pid", True, help="PID namespace to use"),
    _f("userns", True, help="User namespace to use (host, keep-id, or with --uidmap)"),
    _f("uidmap", True, True, help="UID map to use for the user namespace"),
    _f("gidmap", True, True, help="GID map to use for the user namespace"),
    _f("cidfile", True, help="Write the container ID to the file"),
    _f("conmon-pidfile", True, help="Path to the file that will receive the PID of the monitor"),
    _f("sdnotify", True, help="control sd-notify behavior (\"container\"|\"conmon\"|\"ignore\")"),
    _f("requires", True, True, help="Add one or more requirement containers that must be "
                                    "started before this container will start"),  # fmt: skip
    # the image
    _f("pull", True, help="Pull image policy (always, missing, never, newer)"),
    _f("platform", True, help="Specify the platform for selecting the image"),
    _f("arch", True, help="use ARCH instead of the architecture of the machine"),
    _f("os", True, help="use OS instead of the running OS for choosing images"),
    _f("variant", True, help="Use VARIANT instead of the running architecture variant"),
    _f("tls-verify", help="Require HTTPS and verify certificates when contacting registries"),
    _f("authfile", True, help="Path of the authentication file"),
    _f("creds", True, help="Credentials (USERNAME:PASSWORD) to use for pulling the image"),
    _f("disable-content-trust", help="This is a Docker specific option and is a NOOP"),
    *(_f(n, v, m) for n, v, m in NOT_IMPLEMENTED),
)  # fmt: skip

#: pflag `strings` flags: each value is a comma-separated list
CSV_FLAGS = frozenset({"annotation", "cap-add", "cap-drop", "device", "env-file", "group-add",
                  "label-file", "log-opt", "sysctl", "ulimit", "add-host", "dns", "dns-option",
                  "dns-search", "expose", "network-alias", "publish", "requires"})  # fmt: skip
#: flags of `run` that `create` does not have, and the other way round
RUN_ONLY = frozenset({"detach", "detach-keys", "sig-proxy", "rmi", "preserve-fds", "passwd"})
CREATE_ONLY = frozenset({"init-ctr"})
#: flags pypod does not implement -> the values that change nothing (None: any use is refused)
UNSUPPORTED: dict[str, tuple[str, ...] | None] = {
    **{n.split(",")[0]: None for n, _, _ in NOT_IMPLEMENTED},
    "health-on-failure": ("none",), "image-volume": ("bind",),
    "passwd": ("true",), "seccomp-policy": ("default",), "systemd": ("true", "false"),
    "timeout": ("0",), "rmi": ("false",),
    "oom-kill-disable": ("false",), "rootfs": ("false",),
    "unsetenv-all": ("false",),
}  # fmt: skip
#: the global flags podman takes after the command (not -h/-v: those are --hostname, --volume)
GLOBALS = tuple(Flag((f.names[0],), f.takes_value) for f in GLOBAL_FLAGS
                 if f.names[0] != "version")  # fmt: skip

#: the Linux capabilities, in number order (CAP_CHOWN = 0)
CAPABILITIES = tuple("CAP_" + n for n in (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE").split())  # fmt: skip


def flags_for(command: str) -> tuple[Flag, ...]:
    """The flags of `run` or `create` (each has a few the other has not)."""
    skip = CREATE_ONLY if command == "run" else RUN_ONLY
    return tuple(f for f in RUN_FLAGS if f.names[0] not in skip)
