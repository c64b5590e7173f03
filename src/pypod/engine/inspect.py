"""`pypod container inspect`: a container as podman 4.3's inspect JSON shows it.

What was asked (the config) comes from the DB row; what was generated (env, caps, args, user)
from the container's config.json when it has been set up; what happens (state) from the row's
state, brought up to date by the engine.
"""

from __future__ import annotations

import os

from pypod import jsoncodec
from pypod.engine import networking
from pypod.engine.config import ContainerConfig
from pypod.engine.containers import Engine
from pypod.engine.state import Container, shown_status
from pypod.errors import PypodError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Go's zero time.Time, as podman prints unset times
ZERO_TIME = "0001-01-01T00:00:00Z"


def go_time(t: float | None) -> str:
    """RFC 3339 with nanoseconds in UTC, as Go marshals a time.Time (zero when unset)."""
    from pypod.image.local import go_time as rfc3339

    return rfc3339(t) if t else ZERO_TIME


def go_time_string(t: float) -> str:
    """Go's time.Time.String() in local time: `2006-01-02 15:04:05.999999999 -0700 MST`."""
    import time

    local = time.localtime(t)
    frac = f"{t - int(t):.9f}"[2:].rstrip("0")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", local) + (f".{frac}" if frac else "")
    return f"{stamp} {time.strftime('%z %Z', local)}"


def _propagation(options: tuple[str, ...], kind: str) -> str:
    for o in options:
        if o.endswith(("private", "shared", "slave")):
            return o
    return "rprivate" if kind == "bind" else ""


def _spec(eng: Engine, c: Container) -> dict[str, Any]:
    try:
        with open(os.path.join(eng.paths.userdata(c.id), "config.json"), "rb") as f:
            data = jsoncodec.loads(f.read())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _graph_driver(eng: Engine, c: Container) -> dict[str, Any]:
    """The storage driver and the container's directories in it, as podman shows them: the
    image's layers (LowerDir, topmost first), its own (UpperDir, WorkDir) and, while it is
    mounted, MergedDir."""
    store = eng.store
    paths = store.storage_paths()
    data: dict[str, str] = {}
    try:
        layer_id = store.container(c.id).layer_id
        image = store.image(c.config.image_id)
        chain = store.chain(image.top_layer) if image.top_layer is not None else []
    except PypodError:
        return {"Name": paths.driver, "Data": None}
    if paths.driver == "overlay":
        home = paths.driver_home
        if chain:
            data["LowerDir"] = ":".join(f"{home}/{layer.id}/diff" for layer in chain)
        if c.state.get("mountpoint"):
            data["MergedDir"] = f"{home}/{layer_id}/merged"
        data["UpperDir"] = f"{home}/{layer_id}/diff"
        data["WorkDir"] = f"{home}/{layer_id}/work"
    else:
        data["Dir"] = store.driver.diff_path(layer_id)
    return {"Name": paths.driver, "Data": data}


def inspect_container(eng: Engine, c: Container, *, size: bool = False) -> dict[str, Any]:
    spec = _spec(eng, c)
    proc = spec.get("process") or {}
    cfg = c.config
    st = c.state
    status = shown_status(c.status)
    args = list(proc.get("args") or [*(cfg.entrypoint or ()), *cfg.command])
    caps = proc.get("capabilities") or {}
    userdata = eng.paths.userdata(c.id)
    rundir = eng.paths.rundir(c.id)
    health = st.get("health") or {}
    image_name = cfg.image
    try:
        from pypod.image.local import matching_name

        img = eng.store.image(cfg.image_id)
        image_name = matching_name(cfg.image, img) or (img.names[0] if img.names else cfg.image)
        digest = img.digests[0] if img.digests else ""
    except PypodError:  # the image may be gone: inspect shows what it can
        digest = ""
    mounts = [
        {
            "Type": "volume" if m.volume else m.type,
            **({"Name": m.volume} if m.volume else {}),
            "Source": m.source,
            "Destination": m.destination,
            "Driver": "local" if m.volume else "",
            "Mode": "",
            "Options": [o for o in m.options if o not in ("ro", "rw")],
            "RW": "ro" not in m.options,
            "Propagation": _propagation(m.options, m.type),
        }
        for m in cfg.mounts
    ]  # fmt: skip
    res = cfg.resources
    limits = (spec.get("linux") or {}).get("resources") or {}
    cpu = limits.get("cpu") or {}
    memory = limits.get("memory") or {}
    blkio = limits.get("blockIO") or {}
    out: dict[str, Any] = {
        "Id": c.id,
        "Created": go_time(c.created),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "OciVersion": spec.get("ociVersion", "1.0.2-dev"),
            "Status": status,
            "Running": status == "running",
            "Paused": status == "paused",
            "Restarting": False,
            "OOMKilled": bool(st.get("oom_killed", False)),
            "Dead": False,
            "Pid": int(st.get("pid", 0)) if status in ("running", "paused") else 0,
            "ConmonPid": int(st.get("monitor_pid", 0)) if status in ("running", "paused") else 0,
            "ExitCode": int(st.get("exit_code") or 0),
            "Error": str(st.get("error", "")),
            "StartedAt": go_time(st.get("started_at")),
            "FinishedAt": go_time(st.get("finished_at")),
            "Health": {
                "Status": health.get("status", ""),
                "FailingStreak": int(health.get("failing_streak", 0)),
                "Log": health.get("log"),
            },
            "CheckpointedAt": ZERO_TIME,
            "RestoredAt": ZERO_TIME,
        },
        "Image": cfg.image_id,
        "ImageDigest": digest,
        "ImageName": image_name,
        "Rootfs": "",
        "Pod": cfg.pod,
        "ResolvConfPath": os.path.join(userdata, "resolv.conf"),
        "HostnamePath": os.path.join(userdata, "hostname"),
        "HostsPath": os.path.join(userdata, "hosts"),
        "StaticDir": userdata,
        "OCIConfigPath": os.path.join(userdata, "config.json"),
        "OCIRuntime": cfg.runtime,
        "ConmonPidFile": cfg.conmon_pidfile or os.path.join(rundir, "monitor.pid"),
        "PidFile": os.path.join(rundir, "pidfile"),
        "Name": c.name,
        "RestartCount": int(st.get("restart_count", 0)),
        "Driver": eng.store.driver_name if hasattr(eng.store, "driver_name") else "overlay",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "EffectiveCaps": sorted(caps.get("effective") or []),
        "BoundingCaps": sorted(caps.get("bounding") or []),
        "ExecIDs": [
            r[0]
            for r in eng.db.query("SELECT id FROM exec_sessions WHERE container_id = ?", (c.id,))
        ],  # fmt: skip
        "GraphDriver": _graph_driver(eng, c),
        "Mounts": mounts,
        "Dependencies": [],
        "NetworkSettings": networking.network_settings(c),
        "Namespace": "",
        "IsInfra": cfg.infra,
        "IsService": False,
        "Config": {
            "Hostname": spec.get("hostname", cfg.hostname or c.id[:12]),
            "Domainname": "",
            "User": cfg.user or "",
            "AttachStdin": False,
            "AttachStdout": False,
            "AttachStderr": False,
            "Tty": cfg.tty,
            "OpenStdin": cfg.stdin,
            "StdinOnce": False,
            "Env": list(proc.get("env") or [f"{k}={v}" for k, v in cfg.env.items()]),
            "Cmd": list(cfg.command) or None,
            "Image": cfg.image,
            "Volumes": None,
            "WorkingDir": proc.get("cwd", cfg.workdir or "/"),
            "Entrypoint": " ".join(cfg.entrypoint) if cfg.entrypoint else "",
            "OnBuild": None,
            "Labels": dict(cfg.labels) or None,
            "Annotations": dict(spec.get("annotations") or cfg.annotations),
            "StopSignal": cfg.stop_signal or 15,
            "HealthcheckOnFailureAction": "none",
            "CreateCommand": list(st.get("create_command") or []),
            "Umask": "0022",
            "Timeout": 0,
            "StopTimeout": cfg.stop_timeout,
            "Passwd": True,
            "sdNotifyMode": cfg.sdnotify or "container",
        },
        "HostConfig": {
            "Binds": [
                f"{m.volume or m.source}:{m.destination}:{','.join(m.options)}"
                for m in cfg.mounts
                if m.type == "bind"
            ],  # fmt: skip
            "CgroupManager": "cgroupfs",
            "CgroupMode": "host",
            "ContainerIDFile": "",
            "LogConfig": {
                "Type": cfg.log_driver,
                "Config": None,
                "Path": eng.paths.log_path(c.id) if cfg.log_driver != "none" else "",
                "Tag": "",
                "Size": f"{cfg.log_max_size}B" if cfg.log_max_size else "0B",
            },
            "NetworkMode": cfg.network or networking.default_mode(),
            "PortBindings": networking.port_bindings(c),
            "RestartPolicy": {
                "Name": "" if cfg.restart_policy == "no" else cfg.restart_policy,
                "MaximumRetryCount": cfg.restart_retries,
            },
            "AutoRemove": cfg.remove,
            "VolumeDriver": "",
            "VolumesFrom": list(cfg.volumes_from) or None,
            "CapAdd": list(cfg.cap_add),
            "CapDrop": list(cfg.cap_drop),
            "Dns": list(cfg.dns_servers),
            "DnsOptions": list(cfg.dns_options),
            "DnsSearch": list(cfg.dns_search),
            "ExtraHosts": [f"{host}:{ip}" for host, ip in cfg.add_hosts],
            "GroupAdd": list(cfg.group_add),
            "IpcMode": cfg.ipc or "shareable",
            "Cgroup": "",
            "Cgroups": "default",
            "Links": None,
            "OomScoreAdj": cfg.oom_score_adj or 0,
            "PidMode": cfg.pid or "private",
            "Privileged": cfg.privileged,
            "PublishAllPorts": cfg.publish_all,
            "ReadonlyRootfs": cfg.read_only,
            "SecurityOpt": [],
            "Tmpfs": {m.destination: ",".join(m.options) for m in cfg.mounts if m.type == "tmpfs"},
            "UTSMode": cfg.uts or "private",
            "UsernsMode": _userns_mode(cfg),
            **_id_mappings(cfg),
            "ShmSize": cfg.shm_size,
            "Runtime": "oci",
            "ConsoleSize": [0, 0],
            "Isolation": "",
            "CpuShares": res.cpu_shares or 0,
            "Memory": res.memory or 0,
            "NanoCpus": int((res.cpus or 0) * 1e9),
            "CgroupParent": cfg.cgroup_parent or "",
            "BlkioWeight": int(blkio.get("weight") or 0),
            "BlkioWeightDevice": None,
            "BlkioDeviceReadBps": None,
            "BlkioDeviceWriteBps": None,
            "BlkioDeviceReadIOps": None,
            "BlkioDeviceWriteIOps": None,
            "CpuPeriod": int(cpu.get("period") or 0),
            "CpuQuota": int(cpu.get("quota") or 0),
            "CpuRealtimePeriod": int(cpu.get("realtimePeriod") or 0),
            "CpuRealtimeRuntime": int(cpu.get("realtimeRuntime") or 0),
            "CpusetCpus": res.cpuset_cpus or "",
            "CpusetMems": str(cpu.get("mems") or ""),
            "Devices": [],
            "DiskQuota": 0,
            "KernelMemory": 0,
            "MemoryReservation": res.memory_reservation or 0,
            "MemorySwap": res.memory_swap or 0,
            "MemorySwappiness": int(memory.get("swappiness") or 0),
            "OomKillDisable": False,
            "PidsLimit": res.pids_limit if res.pids_limit is not None else 2048,
            "Ulimits": [
                {
                    "Name": f"RLIMIT_{r['type'].removeprefix('RLIMIT_')}",
                    "Soft": r["soft"],
                    "Hard": r["hard"],
                }
                for r in proc.get("rlimits") or []
            ],  # fmt: skip
            "CpuCount": 0,
            "CpuPercent": 0,
            "IOMaximumIOps": 0,
            "IOMaximumBandwidth": 0,
            "CgroupConf": None,
        },
    }
    if size:
        out["SizeRw"] = 0
        out["SizeRootFs"] = 0
    return out


def _userns_mode(cfg: ContainerConfig) -> str:
    """HostConfig.UsernsMode as podman shows it: "" (the engine's namespace), "private" (maps
    of its own), "keep-id", "container:<infra id>" (a member of a pod with a user namespace)."""
    mode = cfg.userns or ""
    if mode.startswith("container:"):
        return ":".join(mode.split(":")[:2])  # not the ":keep-id"/":nomap" pypod keeps with it
    if mode in ("", "private") and (cfg.uidmap or cfg.gidmap):
        return "private"
    return mode


def _id_mappings(cfg: ContainerConfig) -> dict[str, Any]:
    """HostConfig.IDMappings (only with --uidmap/--gidmap: each map as given; one flag alone
    serves for both, as podman does)."""
    uids = [m for text in cfg.uidmap for m in text.split(",") if m]
    gids = [m for text in cfg.gidmap for m in text.split(",") if m]
    if not uids and not gids:
        return {}
    return {"IDMappings": {"UidMap": uids or gids, "GidMap": gids or uids}}
