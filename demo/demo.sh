#!/usr/bin/env bash
# make demo: build a busybox image offline and run containers with pypod, as podman users would;
# then run a bundle with pypod-runtime, as runc users would.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: run as root (containers need namespaces, mounts and cgroups)" >&2
  exit 1
fi
BIN="$PWD/.venv/bin"
RT="$BIN/pypod-runtime"
work=$(mktemp -d /tmp/pypod-demo.XXXXXX)
state="$work/state"
POD=("$BIN/pypod" --root "$work/root" --runroot "$work/run")
cleanup() {
  "$RT" --root "$state" delete --force demo-web >/dev/null 2>&1 || true
  "${POD[@]}" rm -a -f -t 0 >/dev/null 2>&1 || true
  "${POD[@]}" network rm -f demo-net >/dev/null 2>&1 || true
  "${POD[@]}" system reset -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# --- pypod: an image built offline from the host's busybox, then containers --------------------
mkdir -p "$work/image"
"$BIN/python" -c "from pypod.testing import make_busybox_rootfs; make_busybox_rootfs('$work/image/rootfs')"
tar -C "$work/image/rootfs" -cf "$work/image/busybox.tar" .
say "pypod import busybox.tar localhost/busybox   # a rootfs tarball -> an image"
"${POD[@]}" import --change 'CMD ["sh"]' "$work/image/busybox.tar" localhost/busybox
say "pypod images";                       "${POD[@]}" images
say "pypod run --rm busybox echo hello";  "${POD[@]}" run --rm localhost/busybox echo hello
say "pypod run -d --name web -e GREETING=hi busybox sh -c '...'"
"${POD[@]}" run -d --name web -e GREETING=hi localhost/busybox \
  sh -c 'echo "$GREETING from $(hostname)"; while sleep 1; do :; done'
say "pypod ps";                           "${POD[@]}" ps
sleep 0.3
say "pypod logs web";                     "${POD[@]}" logs web
say "pypod exec web ps";                  "${POD[@]}" exec web ps
say "pypod exec web sh -c 'echo \$GREETING'"; "${POD[@]}" exec web sh -c 'echo $GREETING'
say "pypod stop -t 2 web";                "${POD[@]}" stop -t 2 web
say "pypod ps -a";                        "${POD[@]}" ps -a
say "pypod rm web";                       "${POD[@]}" rm web
say "pypod ps -a";                        "${POD[@]}" ps -a

# --- pypod: networks, published ports, names ----------------------------------------------------
mkdir -p "$work/site" && echo "hello from a pypod container" > "$work/site/index.html"
port=$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "pypod run -d --name httpd -p $port:80 -v SITE:/www busybox httpd -f -p 80 -h /www"
"${POD[@]}" run -d --name httpd -p "$port:80" -v "$work/site:/www:ro" localhost/busybox \
  httpd -f -p 80 -h /www
say "pypod port httpd";                   "${POD[@]}" port httpd
say "curl http://127.0.0.1:$port/         # from the host, through the published port"
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/" && break; sleep 0.1; done
say "pypod network create demo-net";     "${POD[@]}" network create demo-net
say "pypod run -d --name web2 --network demo-net busybox httpd -f -p 80 -h /www"
"${POD[@]}" run -d --name web2 --network demo-net -v "$work/site:/www:ro" localhost/busybox \
  httpd -f -p 80 -h /www
say "pypod run --rm --network demo-net busybox wget -q -O - http://web2/   # by name"
"${POD[@]}" run --rm --network demo-net localhost/busybox sh -c \
  'for i in $(seq 50); do wget -q -O - http://web2/ && break; sleep 0.1; done'
say "pypod network ls";                   "${POD[@]}" network ls
say "pypod rm -f -t 0 httpd web2";        "${POD[@]}" rm -f -t 0 httpd web2
say "pypod network rm demo-net";          "${POD[@]}" network rm demo-net

# --- pypod build / pypod-build: images from a Containerfile and step by step -------------------
mkdir -p "$work/ctx" && echo "built by pypod" > "$work/ctx/index.html"
cat > "$work/ctx/Containerfile" <<'CF'
FROM localhost/busybox
ARG GREETING=hello
RUN mkdir -p /www && echo "$GREETING from a RUN step" > /www/run.txt
COPY index.html /www/
CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
CF
say "pypod build -t localhost/site:1 CONTEXT   # FROM + ARG + RUN + COPY + CMD"
"${POD[@]}" build -t localhost/site:1 "$work/ctx"
say "pypod run --rm localhost/site:1 cat /www/run.txt /www/index.html"
"${POD[@]}" run --rm localhost/site:1 cat /www/run.txt /www/index.html
BLD=("$BIN/pypod-build" --root "$work/root" --runroot "$work/run")
say "ctr=\$(pypod-build from localhost/busybox)"; ctr=$("${BLD[@]}" from localhost/busybox)
echo "$ctr"
say "pypod-build run \$ctr -- sh -c 'echo step by step > /hello'"
"${BLD[@]}" run "$ctr" -- sh -c 'echo step by step > /hello'
say "pypod-build config --cmd 'cat /hello' \$ctr"; "${BLD[@]}" config --cmd 'cat /hello' "$ctr"
say "pypod-build commit -q --rm \$ctr localhost/hello"; "${BLD[@]}" commit -q --rm "$ctr" localhost/hello
say "pypod run --rm localhost/hello";    "${POD[@]}" run --rm localhost/hello
say "pypod images";                       "${POD[@]}" images

# --- pypod-runtime: an OCI bundle, as runc users run it -----------------------------------------
mkdir -p "$work/bundle"
"$BIN/python" -c "from pypod.testing import make_busybox_rootfs; make_busybox_rootfs('$work/bundle/rootfs')"
cd "$work/bundle"
say "pypod-runtime spec          # runc's default config.json"
"$RT" spec
# run something that shows what the container sees instead of an interactive shell
"$BIN/python" - <<'PY'
import json
with open("config.json") as f:
    spec = json.load(f)
spec["process"]["terminal"] = False
spec["process"]["args"] = ["sh", "-c",
    "echo hostname: $(hostname); id; echo; ps; echo; mount; echo; "
    "grep -E 'Cap(Eff|Bnd)|NoNewPrivs|Seccomp:' /proc/self/status"]
with open("config.json", "w") as f:
    json.dump(spec, f, indent="\t")
PY

say "pypod-runtime run demo-run   # foreground: the container's output, then its exit code"
"$RT" --root "$state" run demo-run
echo "exit code: $?"

"$BIN/python" - <<'PY'
import json
with open("config.json") as f:
    spec = json.load(f)
spec["process"]["args"] = ["sleep", "1000"]
with open("config.json", "w") as f:
    json.dump(spec, f, indent="\t")
PY
say "pypod-runtime create demo-web"; "$RT" --root "$state" create demo-web
say "pypod-runtime list";            "$RT" --root "$state" list
say "pypod-runtime start demo-web";  "$RT" --root "$state" start demo-web
say "pypod-runtime exec demo-web ps"; "$RT" --root "$state" exec demo-web ps
say "pypod-runtime pause demo-web";  "$RT" --root "$state" pause demo-web
say "pypod-runtime list";            "$RT" --root "$state" list
say "pypod-runtime resume demo-web"; "$RT" --root "$state" resume demo-web
say "pypod-runtime state demo-web";  "$RT" --root "$state" state demo-web
say "pypod-runtime kill demo-web KILL"; "$RT" --root "$state" kill demo-web KILL
sleep 0.2
say "pypod-runtime delete demo-web"; "$RT" --root "$state" delete demo-web
say "pypod-runtime list";            "$RT" --root "$state" list
