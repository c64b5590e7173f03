"""`pypod run`/`create` flags -> ContainerConfig: values, defaults and podman's messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypod.cli.engine.run_flags import CAPABILITIES, RUN_FLAGS, flags_for, parse_run, read_env_file
from pypod.cli.engine.run_values import (
    SIGNALS,
    parse_detach_keys,
    parse_duration,
    parse_human_size,
    parse_int,
    parse_signal,
    parse_size,
    parse_uint,
    parse_ulimit,
)
from pypod.engine.config import ContainerConfig, Healthcheck, MountSpec, from_json, to_json
from pypod.errors import EXIT_ENGINE_ERROR, InvalidArgument, NotSupported


def run(*args: str) -> ContainerConfig:
    return parse_run(list(args))[0]


def error(*args: str, command: str = "run") -> str:
    with pytest.raises(InvalidArgument) as e:
        parse_run(list(args), command=command)
    assert e.value.engine_exit_code == EXIT_ENGINE_ERROR
    return str(e.value)


# --- the scanner ----------------------------------------------------------------------------
def test_flags_stop_at_the_image_and_the_rest_is_the_command() -> None:
    cfg, extras = parse_run(["-d", "--name", "web", "busybox", "sh", "-c", "echo --rm -d"])
    assert cfg.image == "busybox" and cfg.image_id == ""
    assert cfg.name == "web"
    assert cfg.command == ("sh", "-c", "echo --rm -d")
    assert cfg.remove is False and extras.detach is True
    assert run("--", "busybox", "-x").command == ("-x",)
    assert run("busybox").command == ()


def test_pflag_forms() -> None:
    cfg, extras = parse_run(["-dit", "-m512m", "-eA=1", "--name=x", "-w=/srv", "--rm=false",
                             "-t=false", "busybox"])  # fmt: skip
    assert extras.detach and cfg.stdin and not cfg.tty and not cfg.remove
    assert cfg.resources.memory == 512 * 2**20
    assert cfg.env["A"] == "1" and cfg.name == "x" and cfg.workdir == "/srv"
    assert run("-h", "box", "busybox").hostname == "box"  # -h is --hostname, as podman's
    assert run("--net", "host", "busybox").network == "host"


def test_pflag_errors_are_podmans() -> None:
    assert error("--foo", "busybox") == "unknown flag: --foo\nSee 'pypod run --help'"
    assert error("--foo=bar", "busybox").startswith("unknown flag: --foo\n")
    assert error("-x", "busybox").startswith("unknown shorthand flag: 'x' in -x\n")
    assert error("--name").startswith("flag needs an argument: --name\n")
    assert error("-m").startswith("flag needs an argument: 'm' in -m\n")
    assert error("--rm=maybe", "busybox").startswith(
        'invalid argument "maybe" for "--rm" flag: strconv.ParseBool: parsing "maybe": '
        "invalid syntax\n"
    )
    assert error() == "requires at least 1 arg(s), only received 0"
    # create has no -d, --detach-keys, --sig-proxy
    assert error("-d", "busybox", command="create").startswith(
        "unknown shorthand flag: 'd' in -d\nSee 'pypod create --help'"
    )
    assert error("--detach-keys", "x", "busybox", command="create").startswith(
        "unknown flag: --detach-keys"
    )


def test_every_podman_flag_is_known() -> None:
    names = {f.names[0] for f in RUN_FLAGS}
    for flag in ("publish", "dns", "add-host", "attach", "pod", "userns", "secret", "umask"):
        assert flag in names
    with pytest.raises(NotSupported, match="'--secret' is not supported yet"):
        parse_run(["--secret", "s", "busybox"])
    with pytest.raises(NotSupported, match="'--ip6' is not supported yet"):
        parse_run(["--ip6=fd00::5", "busybox"])
    # a podman default value changes nothing and is accepted
    assert run("--systemd=false", "--cgroups=enabled", "--passwd", "busybox").image == "busybox"
    assert {f.names[0] for f in flags_for("create")} == names - {
        "detach", "detach-keys", "sig-proxy", "rmi", "preserve-fds", "passwd"
    }  # fmt: skip


def test_global_flags_among_run_flags_and_help() -> None:
    _, extras = parse_run(["--root", "/r", "--runroot=/rr", "busybox"])
    assert extras.globals == {"root": "/r", "runroot": "/rr"}
    _, extras = parse_run(["--help"])
    assert extras.help


# --- environment, labels, annotations -------------------------------------------------------
def test_env_order_and_host_lookups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROMHOST", "h")
    monkeypatch.setenv("FOO1", "a")
    monkeypatch.setenv("FOO2", "b")
    monkeypatch.setenv("https_proxy", "http://proxy:3128")
    monkeypatch.delenv("NOTSET", raising=False)
    env_file = tmp_path / "env"
    env_file.write_text('# comment\nA=1\n\n  C = 2 \nD="q"\nFROMHOST\nNOTSET\nX=file\n')
    cfg = run("--env-file", str(env_file), "-e", "X=flag", "-e", "FOO*", "-e", "NOTSET",
              "-e", "Y=1=2", "busybox")  # fmt: skip
    assert cfg.env == {
        "https_proxy": "http://proxy:3128",
        "A": "1", "C ": " 2 ", "D": '"q"', "FROMHOST": "h", "X": "flag", "FOO1": "a",
        "FOO2": "b", "Y": "1=2",
    }  # fmt: skip
    assert "https_proxy" not in run("--http-proxy=false", "busybox").env
    assert run("--env-host", "busybox").env["FROMHOST"] == "h"
    assert read_env_file(str(env_file))["A"] == "1"
    assert error("-e", "=x", "busybox") == 'invalid environment variable: "=x"'
    (tmp_path / "bad").write_text("=x\n")
    assert error("--env-file", str(tmp_path / "bad"), "busybox") == (
        f'parsing env file "{tmp_path / "bad"}": invalid environment variable: "=x"'
    )
    assert error("--env-file", "/nonexist", "busybox") == (
        'parsing env file "/nonexist": open /nonexist: no such file or directory'
    )


def test_labels_and_annotations(tmp_path: Path) -> None:
    (tmp_path / "labels").write_text("# c\nl1=v1\nl2\n\n  l3=v3 \n")
    cfg = run("--label-file", str(tmp_path / "labels"), "-l", "k", "--label", "k2=v=2",
              "--label", "l1=flag", "--annotation", "a=1,b=2", "busybox")  # fmt: skip
    assert cfg.labels == {"l1": "flag", "l3": "v3 ", "k": "", "k2": "v=2"}
    assert cfg.annotations == {"a": "1", "b": "2"}
    assert error("--label", "=x", "busybox") == (
        'unable to process labels: invalid label format: "=x"'
    )
    (tmp_path / "bad").write_text("l 3=x\n")
    assert "has white spaces, poorly formatted name" in error(
        "--label-file", str(tmp_path / "bad"), "busybox"
    )
    assert error("--annotation", "foo", "busybox") == "annotations must be formatted KEY=VALUE"


# --- mounts ---------------------------------------------------------------------------------
def test_volume_flag_bind_named_and_anonymous(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        cfg = run("-v", f"{tmp_path}:/data:Z", "-v", "./sub:/rel:ro,U", "-v", "myvol:/v:ro",
                  "-v", "/anon/", "-v", f"{tmp_path}:/p:rshared,nosuid,bind",
                  "busybox")  # fmt: skip
    finally:
        os.chdir(cwd)
    by_dest = {m.destination: m for m in cfg.mounts}
    assert by_dest["/data"] == MountSpec(
        type="bind", source=str(tmp_path), destination="/data",
        options=("rw", "rprivate", "rbind"),
    )  # fmt: skip
    assert by_dest["/rel"].source == str(tmp_path / "sub")
    assert by_dest["/rel"].options == ("ro", "rprivate", "rbind") and by_dest["/rel"].chown
    assert by_dest["/v"] == MountSpec(
        type="bind", source="", destination="/v", volume="myvol",
        options=("ro", "rprivate", "nosuid", "nodev", "rbind"),
    )  # fmt: skip
    assert by_dest["/anon"].volume == "" and by_dest["/anon"].source == ""
    assert by_dest["/p"].options == ("rshared", "nosuid", "bind", "rw")


def test_volume_flag_errors(tmp_path: Path) -> None:
    assert error("-v", "/nonexist:/x", "busybox") == "statfs /nonexist: no such file or directory"
    assert error("-v", "rel/path:/x", "busybox") == (
        'creating named volume "rel/path": running volume create option: names must match '
        "[a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument"
    )
    assert error("-v", "/tmp:/x:foo", "busybox") == 'invalid option type "foo"'
    assert error("-v", "/tmp:rel", "busybox") == (
        'invalid container path "rel", must be an absolute path'
    )
    assert error("-v", "/tmp:/x:ro,rw", "busybox") == (
        "invalid options \"ro, rw\", can only specify 1 'rw' or 'ro' option"
    )
    assert error("-v", "/tmp:/x:rprivate,shared", "busybox").endswith(
        "can only specify 1 '[r]shared', '[r]private', '[r]slave' or '[r]unbindable' option"
    )
    assert error("-v", "/x:/y:/z:/w", "busybox") == (
        "/x:/y:/z:/w: incorrect volume format, should be [host-dir:]ctr-dir[:option]"
    )
    assert error("-v", "", "busybox") == "container directory cannot be empty"
    assert error("-v", ":/x", "busybox") == "host directory cannot be empty"
    assert error("-v", "/tmp:/x", "-v", "/var:/x", "busybox") == "/x: duplicate mount destination"
    assert error("-v", "/tmp:/x", "--tmpfs", "/x", "busybox") == "/x: duplicate mount destination"
    # the same mount twice is one mount
    assert len(run("-v", "/tmp:/x", "-v", "/tmp:/x/", "busybox").mounts) == 1
    with pytest.raises(NotSupported):
        parse_run(["-v", "/tmp:/x:O", "busybox"])


def test_mount_flag(tmp_path: Path) -> None:
    cfg = run(
        "--mount", f"type=bind,src={tmp_path},target=/b,readonly,bind-propagation=rslave,U",
        "--mount", "type=volume,source=v2,destination=/v,ro=true",
        "--mount", "type=volume,dst=/anon",
        "--mount", "type=tmpfs,dst=/t,tmpfs-size=10m,tmpfs-mode=1777,notmpcopyup",
        "--mount", f"type=bind,src={tmp_path},dst=/nr,bind-nonrecursive,relabel=shared",
        "busybox",
    )  # fmt: skip
    by_dest = {m.destination: m for m in cfg.mounts}
    assert by_dest["/b"].options == ("ro", "rslave", "rbind") and by_dest["/b"].chown
    assert by_dest["/v"].volume == "v2" and by_dest["/v"].options[0] == "ro"
    assert by_dest["/anon"].volume == ""
    assert by_dest["/t"] == MountSpec(
        type="tmpfs", source="tmpfs", destination="/t",
        options=("size=10m", "mode=1777", "rw", "rprivate", "noexec", "nosuid", "nodev"),
    )  # fmt: skip
    assert by_dest["/nr"].options == ("bind", "rw", "rprivate")
    assert error("--mount", "type=foo,dst=/x", "busybox") == 'invalid filesystem type "foo"'
    assert error("--mount", "dst=/x", "busybox").startswith("incorrect mount format: should be")
    assert error("--mount", "type=bind,src=/tmp", "busybox") == "must set volume destination"
    assert error("--mount", "type=bind,dst=/nonexist-dst", "busybox") == (
        "statfs /nonexist-dst: no such file or directory"
    )
    assert error("--mount", "type=tmpfs,dst=/x,src=/tmp", "busybox") == (
        "source is not supported with tmpfs mounts"
    )
    assert error("--mount", "type=bind,src=/tmp,dst=/x,foo=bar", "busybox") == (
        "foo: invalid mount option"
    )
    assert error("--mount", "type=bind,src=/tmp,dst=/x,tmpfs-size=1m", "busybox") == (
        "tmpfs-size: invalid mount option"
    )
    assert error("--mount", "type=bind,src=/tmp,dst=/x,bind-propagation=foo", "busybox") == (
        'invalid option type "foo"'
    )
    assert error("--mount", "type=bind,src=/tmp,dst=/x,ro,rw", "busybox") == (
        "cannot pass 'readonly', 'ro', or 'rw' options more than once: must provide an "
        "argument for option"
    )
    assert error("--mount", "type=tmpfs,dst=/x,tmpfs-size=abc", "busybox").startswith(
        'invalid tmpfs option "size=abc"'
    )


def test_tmpfs_flag_and_order() -> None:
    cfg = run("--tmpfs", "/a/b:rw,size=10m,mode=1777,exec", "--tmpfs", "/a", "busybox")
    assert [m.destination for m in cfg.mounts] == ["/a", "/a/b"]
    assert cfg.mounts[1].options == (
        "rw", "size=10m", "mode=1777", "exec", "rprivate", "nosuid", "nodev", "tmpcopyup",
    )  # fmt: skip
    assert error("--tmpfs", "/x:foo", "busybox") == (
        'unknown mount option "foo": invalid mount option'
    )
    assert error("--tmpfs", "/x:ro,rw", "busybox") == (
        "only one of 'rw' and 'ro' can be used: duplicate mount option passed"
    )
    assert error("--tmpfs", "rel", "busybox") == (
        'invalid container path "rel", must be an absolute path'
    )


def test_volumes_from_and_devices() -> None:
    cfg = run("--volumes-from", "db:ro,z", "--device", "/dev/null:/dev/n:rw", "busybox")
    assert cfg.volumes_from == ("db:ro,z",) and cfg.devices == ("/dev/null:/dev/n:rw",)
    assert error("--volumes-from", "a:foo", "busybox") == (
        'invalid option "foo" specified - volumes from another container can only use '
        "z,ro,rw options"
    )
    assert error("--device", "/dev/null:rel", "busybox") == "invalid device mode: rel"
    assert error("--device", "/dev/null:/x:rw:extra", "busybox") == (
        "invalid device specification: /dev/null:/x:rw:extra"
    )
    assert error("--device", "/nonexist", "busybox") == "stat /nonexist: no such file or directory"


# --- process, lifecycle, health -------------------------------------------------------------
def test_entrypoint_user_workdir_groups() -> None:
    assert run("busybox").entrypoint is None
    assert run("--entrypoint", "", "busybox").entrypoint == ()
    assert run("--entrypoint", '["/bin/sh","-c"]', "busybox").entrypoint == ("/bin/sh", "-c")
    assert run("--entrypoint", "a b", "busybox").entrypoint == ("a b",)
    assert run("--entrypoint", '["a"', "busybox").entrypoint == ('["a"',)
    cfg = run("-u", "1000:100", "--group-add", "10,wheel", "-w", "/srv", "busybox")
    assert (cfg.user, cfg.group_add, cfg.workdir) == ("1000:100", ("10", "wheel"), "/srv")
    assert error("--group-add", "10", "--group-add", "keep-groups", "busybox").startswith(
        "the '--group-add keep-groups' option is not allowed"
    )
    assert error("--uts", "host", "--hostname", "x", "busybox").endswith(
        "cannot set hostname when running in the host UTS namespace: invalid configuration"
    )


def test_restart_policies() -> None:
    assert (run("busybox").restart_policy, run("busybox").restart_retries) == ("no", 0)
    cfg = run("--restart", "on-failure:3", "busybox")
    assert (cfg.restart_policy, cfg.restart_retries) == ("on-failure", 3)
    assert run("--restart=unless-stopped", "busybox").restart_policy == "unless-stopped"
    assert run("--rm", "--restart", "on-failure", "busybox").remove
    assert error("--restart", "always", "--rm", "busybox") == (
        'the --rm option conflicts with --restart, when the restartPolicy is not "" and "no"'
    )
    assert error("--restart", "foo", "busybox") == (
        'running container create option: "foo" is not a valid restart policy: invalid argument'
    )
    assert error("--restart", "always:3", "busybox") == (
        "restart policy retries can only be specified with on-failure restart policy"
    )
    assert error("--restart", "on-failure:-1", "busybox") == (
        "must specify restart policy retry count as a number greater than 0"
    )


def test_healthcheck() -> None:
    assert run("--health-interval", "10s", "busybox").healthcheck is None
    assert run("--health-cmd", "curl -f http://x", "busybox").healthcheck == Healthcheck(
        test=("CMD-SHELL", "curl -f http://x")
    )
    cfg = run("--health-cmd", '["curl","-f"]', "--health-interval", "1m30s",
              "--health-timeout", "500ms", "--health-start-period", "5s",
              "--health-retries", "5", "busybox")  # fmt: skip
    assert cfg.healthcheck == Healthcheck(
        test=("CMD", "curl", "-f"), interval=90.0, timeout=0.5, start_period=5.0, retries=5
    )
    assert run("--health-cmd", "none", "busybox").healthcheck == Healthcheck(test=("NONE",))
    assert run("--no-healthcheck", "busybox").healthcheck == Healthcheck(test=("NONE",))
    hc = run("--health-cmd", "true", "--health-interval", "disable", "busybox").healthcheck
    assert hc is not None and hc.interval == 0
    assert error("--health-cmd", "true", "--health-interval", "30", "busybox") == (
        'invalid healthcheck-interval: time: missing unit in duration "30"'
    )
    assert error("--health-cmd", "true", "--health-retries", "0", "busybox") == (
        "healthcheck-retries must be greater than 0"
    )
    assert error("--health-cmd", "true", "--health-timeout", "0s", "busybox") == (
        "healthcheck-timeout must be at least 1 second"
    )


def test_signals_logs_detach_keys() -> None:
    assert run("busybox").stop_signal is None
    assert run("--stop-signal", "SIGKILL", "busybox").stop_signal == 9
    assert run("--stop-signal", "term", "busybox").stop_signal == 15
    assert run("--stop-timeout", "3", "busybox").stop_timeout == 3
    assert error("--stop-signal", "FOO", "busybox") == "invalid signal: FOO"
    assert run("--detach-keys", "ctrl-a,x", "busybox").detach_keys == "ctrl-a,x"
    assert run("--detach-keys", "", "busybox").detach_keys == ""
    assert error("--detach-keys", "ctrl-1", "busybox") == (
        "invalid detach keys: Unknown character: 'ctrl-1'"
    )
    cfg = run("--log-driver", "json-file", "--log-opt", "max-size=10mb", "busybox")
    assert (cfg.log_driver, cfg.log_max_size) == ("json-file", 10_000_000)
    with pytest.raises(NotSupported, match="journald"):
        parse_run(["--log-driver", "journald", "busybox"])
    assert error("--log-opt", "foo", "busybox") == 'invalid log option "foo"'
    assert error("--log-opt", "max-size=abc", "busybox") == "invalid size: 'abc'"


# --- resources and security -----------------------------------------------------------------
def test_resources() -> None:
    cfg = run("-m", "512m", "--memory-swap", "-1", "--memory-reservation", "256m", "--cpus",
              "1.5", "-c", "512", "--cpuset-cpus", "0", "--pids-limit", "100", "--shm-size",
              "1g", "--ulimit", "nofile=100:200,nproc=unlimited", "--oom-score-adj", "-500",
              "busybox")  # fmt: skip
    r = cfg.resources
    assert (r.memory, r.memory_swap, r.memory_reservation) == (2**29, -1, 2**28)
    assert (r.cpus, r.cpu_shares, r.cpuset_cpus, r.pids_limit) == (1.5, 512, "0", 100)
    assert cfg.shm_size == 2**30 and cfg.oom_score_adj == -500
    assert cfg.ulimits == ("nofile=100:200", "nproc=-1:-1")
    assert run("busybox").shm_size == 64 * 2**20
    assert error("-m", "1x", "busybox") == "invalid value for memory: invalid size: '1x'"
    assert error("-m", "5m", "busybox") == "Minimum memory limit allowed is 6MB"
    assert error("--shm-size", "foo", "busybox") == (
        "unable to translate --shm-size: invalid size: 'foo'"
    )
    assert error("--memory-swap", "10m", "busybox").startswith(
        "you should always set a memory limit when using a memoryswap limit"
    )
    assert error("-m", "10m", "--memory-swap", "8m", "busybox").startswith(
        "minimum memoryswap limit should be larger than memory limit"
    )
    assert error("--cpus", "abc", "busybox") == (
        'invalid argument "abc" for "--cpus" flag: strconv.ParseFloat: parsing "abc": '
        "invalid syntax\nSee 'pypod run --help'"
    )
    assert error("--cpus", "0.001", "busybox") == (
        "CPU cfs quota cannot be less than 1ms (i.e. 1000)"
    )
    assert error("--cpuset-cpus", "abc", "busybox") == "invalid value abc for cpuset cpus"
    assert error("--cpuset-cpus", "4095", "busybox").startswith("requested CPUs are not available")
    assert error("--ulimit", "foo=1", "busybox") == (
        'ulimit option "foo=1" requires name=SOFT:HARD, failed to be parsed: invalid ulimit '
        "type: foo"
    )
    assert error("--oom-score-adj", "1001", "busybox").startswith(
        "oom_score_adj must be between -1000 and 1000"
    )
    assert error("--pids-limit", "abc", "busybox", command="create") == (
        'invalid argument "abc" for "--pids-limit" flag: strconv.ParseInt: parsing "abc": '
        "invalid syntax\nSee 'pypod create --help'"
    )


def test_security(tmp_path: Path) -> None:
    profile = tmp_path / "seccomp.json"
    profile.write_text("{}")
    cfg = run("--cap-add", "net_admin,CAP_SYS_TIME", "--cap-drop", "all", "--security-opt",
              "no-new-privileges", "--security-opt", f"seccomp={profile}", "--security-opt",
              "mask=/a:/b", "--security-opt", "unmask=ALL", "--security-opt", "label=disable",
              "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=1",
              "busybox")  # fmt: skip
    assert cfg.cap_add == ("CAP_NET_ADMIN", "CAP_SYS_TIME") and cfg.cap_drop == ("ALL",)
    assert cfg.no_new_privileges and cfg.seccomp_profile == str(profile)
    assert cfg.mask == ("/a", "/b") and cfg.unmask == ("ALL",)
    assert cfg.sysctls == {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"}
    assert run("--security-opt", "seccomp=unconfined", "busybox").seccomp_profile == "unconfined"
    assert error("--cap-add", "foo", "busybox") == '"CAP_FOO": unknown capability'
    assert error("--security-opt", "foo", "busybox") == 'invalid --security-opt 1: "foo"'
    assert error("--security-opt", "no-new-privileges=abc", "busybox") == (
        'invalid --security-opt 2: "no-new-privileges=abc"'
    )
    assert error("--security-opt", "seccomp=/nonexist", "busybox") == (
        "opening seccomp profile failed: open /nonexist: no such file or directory"
    )
    assert error("--sysctl", "kernel.foo=1", "busybox") == "sysctl 'kernel.foo' is not allowed"
    assert error("--sysctl", "net.a = 1", "busybox") == "'net.a = 1' is invalid, extra spaces found"
    assert error("--network", "host", "--sysctl", "net.a=1", "busybox") == (
        "sysctl net.a=1 can't be set since Network Namespace set to host: invalid argument"
    )


def test_capability_table_is_the_kernels() -> None:
    from pypod.linux.capabilities import CAP_NAMES

    assert {name: i for i, name in enumerate(CAPABILITIES)} == CAP_NAMES


# --- namespaces, network, image options -----------------------------------------------------
def test_namespaces_network_tz_runtime() -> None:
    cfg = run("--pid", "host", "--ipc", "container:db", "--uts", "private", "--network", "none",
              "--tz", "local", "--runtime", "runc", "--cgroup-parent", "/x", "busybox")  # fmt: skip
    assert (cfg.pid, cfg.ipc, cfg.uts, cfg.network) == ("host", "container:db", "", "none")
    assert (cfg.tz, cfg.runtime, cfg.cgroup_parent) == ("local", "runc", "/x")
    assert run("busybox").network == ContainerConfig(image="", image_id="").network
    net = run("--network", "mynet", "--network", "other:ip=10.1.2.3,alias=a", "busybox")
    assert (net.network, list(net.networks)) == ("bridge", ["mynet", "other"])
    assert net.networks["other"] == {"static_ips": ["10.1.2.3"], "aliases": ["a"]}
    assert error("--pid", "foo", "busybox") == "unrecognized namespace mode foo passed"
    assert error("--ipc", "container:", "busybox") == (
        'must provide name or ID or a container when specifying "container:"'
    )
    assert error("--tz", "foo/bar", "busybox").endswith(
        "stat /usr/share/zoneinfo/foo/bar: no such file or directory"
    )


def test_extras(tmp_path: Path) -> None:
    cfg, extras = parse_run(["--replace", "--name", "n", "--pull", "Always", "--cidfile",
                             str(tmp_path / "cid"), "--sig-proxy=false", "-q", "--arch",
                             "arm64", "--tls-verify=false", "--authfile", "/a.json", "--creds",
                             "u:p", "busybox"])  # fmt: skip
    assert extras.replace and extras.pull == "always" and extras.cidfile == str(tmp_path / "cid")
    assert not extras.sig_proxy and extras.quiet and extras.platform == "linux/arm64"
    assert extras.tls_verify is False and extras.authfile == "/a.json" and extras.creds == "u:p"
    assert parse_run(["busybox"])[1].tls_verify is None
    assert error("--replace", "busybox") == "cannot replace container without --name being set"
    assert error("--name", "bad name", "busybox").endswith(
        "names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument"
    )
    assert error("--pull", "foo", "busybox") == 'unsupported pull policy "foo"'
    (tmp_path / "cid").write_text("x")
    assert error("--cidfile", str(tmp_path / "cid"), "busybox").startswith(
        "container id file exists. Ensure another container is not using it or delete"
    )


def test_config_survives_the_state_db_json(tmp_path: Path) -> None:
    cfg = run("-v", "/tmp:/data:ro", "-v", "vol:/v", "--tmpfs", "/t", "--health-cmd", "true",
              "-e", "A=1", "--ulimit", "nofile=5", "busybox", "sh")  # fmt: skip
    assert from_json(to_json(cfg)) == cfg


# --- the value parsers, property-based ------------------------------------------------------
_UNIT = st.sampled_from(["", "b", "k", "K", "kb", "KiB", "m", "M", "mb", "MiB", "g", "G", "gb"])


@given(st.integers(min_value=0, max_value=10**6), _UNIT, st.booleans())
def test_size_units(n: int, unit: str, space: bool) -> None:
    text = f"{n}{' ' if space and unit else ''}{unit}"
    mult = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit[:1].lower()]
    assert parse_size(text) == n * mult
    assert parse_human_size(text) == n * {"": 1, "b": 1, "k": 10**3, "m": 10**6,
                                          "g": 10**9}[unit[:1].lower()]  # fmt: skip


@given(st.text(max_size=12))
def test_size_never_crashes(text: str) -> None:
    try:
        assert parse_size(text) >= 0
    except InvalidArgument as e:
        assert "invalid size" in str(e) or "ParseFloat" in str(e)


_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                   "h": 3600 * 10**9}  # fmt: skip


@given(
    st.lists(st.tuples(st.integers(0, 10**5), st.sampled_from(sorted(_DURATION_UNITS))),
             min_size=1, max_size=4),
    st.sampled_from(["", "+", "-"]),
)  # fmt: skip
def test_duration_components_add_up(parts: list[tuple[int, str]], sign: str) -> None:
    text = sign + "".join(f"{n}{u}" for n, u in parts)
    total = sum(n * _DURATION_UNITS[u] for n, u in parts)
    assert parse_duration(text) == (-total if sign == "-" else total)


def test_duration_examples_and_errors() -> None:
    assert parse_duration("1m30s") == 90 * 10**9
    assert parse_duration("1.5h") == 5400 * 10**9
    assert parse_duration(".5s") == parse_duration("500ms") == 5 * 10**8
    assert parse_duration("0") == 0
    for text, message in (("30", 'time: missing unit in duration "30"'),
                          ("30x", 'time: unknown unit "x" in duration "30x"'),
                          ("", 'time: invalid duration ""'), (".s", 'time: invalid duration ".s"'),
                          ("1s.", 'time: invalid duration "1s."'),
                          ("9999999999h", 'time: invalid duration "9999999999h"')):  # fmt: skip
        with pytest.raises(InvalidArgument) as e:
            parse_duration(text)
        assert str(e.value) == message


@given(st.text(max_size=10))
def test_duration_never_crashes(text: str) -> None:
    try:
        parse_duration(text)
    except InvalidArgument as e:
        assert str(e).startswith("time: ")


@given(st.sampled_from(sorted(SIGNALS)), st.sampled_from(["", "SIG", "sig"]), st.booleans())
def test_signal_names(name: str, prefix: str, lower: bool) -> None:
    text = prefix + (name.lower() if lower else name)
    assert parse_signal(text) == SIGNALS[name]


@given(st.integers(-100, 200))
def test_signal_numbers(n: int) -> None:
    if 1 <= n <= 64:
        assert parse_signal(str(n)) == n
    else:
        with pytest.raises(InvalidArgument):
            parse_signal(str(n))


@given(st.integers(-(2**63), 2**63 - 1))
def test_go_integers_in_every_base(n: int) -> None:
    sign = "-" if n < 0 else ""
    for text in (str(n), f"{sign}{abs(n):#x}", f"{sign}{abs(n):#o}", f"{sign}{abs(n):#b}"):
        assert parse_int(text, "--x") == n
    if n >= 0:
        assert parse_uint(str(n), "--x") == n
    else:
        with pytest.raises(InvalidArgument):
            parse_uint(str(n), "--x")


def test_go_integer_quirks() -> None:
    assert parse_int("010", "--x") == 8  # Go's base 0: a leading 0 is octal
    assert parse_int("1_000", "--x") == 1000
    for text in ("", " 1", "1.0", "0x", "9223372036854775808"):
        with pytest.raises(InvalidArgument):
            parse_int(text, "--x")


def test_ulimit_and_detach_key_parsers() -> None:
    assert parse_ulimit("nofile=100") == ("nofile", 100, 100)
    assert parse_ulimit("core=-1") == ("core", -1, -1)
    assert parse_ulimit("nofile=unlimited:unlimited") == ("nofile", -1, -1)
    assert parse_ulimit("nofile=10:-1") == ("nofile", 10, -1)
    for text in ("nofile", "nofile=1:2:3", "nofile=abc", "nofile=-1:10"):
        with pytest.raises(InvalidArgument):
            parse_ulimit(text)
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("a,ctrl-@,ctrl-_") == b"a\x00\x1f"
    assert parse_detach_keys("") == b""
