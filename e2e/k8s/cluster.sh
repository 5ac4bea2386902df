#!/bin/bash
# A real single-node Kubernetes 1.20.2 on this machine, offline (issue 11, "Here, without kind").
#
#   e2e/k8s/cluster.sh build    build (once) the binaries and the pause image from Debian's source package
#   e2e/k8s/cluster.sh up       etcd, apiserver, controller-manager, scheduler, kubelet (dockershim on the running
#                               Docker engine), kube-proxy (iptables), CNI bridge; prints the kubeconfig path
#   e2e/k8s/cluster.sh down     removes everything `up` started or changed
#   e2e/k8s/cluster.sh status
#   e2e/k8s/cluster.sh why-not  says why `up` cannot run on this machine (nothing, exit 0: it can)
#
# The recipe and the reasons behind every flag: /work/shared/k8s/README.md (tried on this kind of machine).
# NETWORK SAFETY (nothing may leave this machine): kubelet is built without the cloud credential providers
# (kubelet-local.patch; unpatched, the AWS one dials the metadata address 169.254.169.254 at start and on every pull)
# and runs with AWS_EC2_METADATA_DISABLED=true as well; a FORWARD guard drops pod traffic leaving through the uplink;
# images are tagged localhost/... so an accidental pull can only dial 127.0.0.1; `up` fails if `ss -tunp` shows a
# socket of ours pointing outside the machine.
#
# Layout under K8S_HOME (default ~/.cache/meshplane/k8s):
#   bin/          the six binaries (kubectl 1.20 too: the tests and `kubectl apply -k manifests/` use it), with bin/RECIPE = the key of the recipe that built them
#   src/          the Debian source tree and the Go build cache (3.5 GB; kept for incremental rebuilds)
#   pause/        pause.tar (imported as localhost/pause:3.4.1) and its RECIPE key
#   run/          the running cluster: PKI (fresh on every `up`), kubeconfigs, logs, pids, etcd, kubelet root
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
K8S_HOME=${K8S_HOME:-$HOME/.cache/meshplane/k8s}
BIN=$K8S_HOME/bin
SRC=$K8S_HOME/src
RUN=${RUN:-$K8S_HOME/run}
DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
TREE=kubernetes-1.20.5+really1.20.2
WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kube-proxy cmd/kubectl"
BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"
APT_PACKAGES="golang-go etcd-server containernetworking-plugins conntrack socat ipset ethtool
  golang-github-modern-go-reflect2-dev build-essential rsync curl jq openssl iptables iproute2"
PAUSE_IMAGE=localhost/pause:3.4.1
NODE=meshplane-node
IP=10.200.0.1                 # apiserver / kubelet / node InternalIP, on the port-less bridge k8s-local0
SVC_CIDR=10.96.0.0/16         # Service `kubernetes` = 10.96.0.1
CLUSTER_CIDR=10.244.0.0/16    # the node's podCIDR is 10.244.0.0/24 (the CNI conflist)
PKI=$RUN/pki LOGS=$RUN/logs PIDS=$RUN/pids
COMPONENTS="etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"
t0=$(date +%s.%N)
ts() { awk -v a="$t0" -v b="$(date +%s.%N)" -v m="$*" 'BEGIN{printf "[%7.2fs] %s\n", b-a, m}' >&2; }
die() { ts "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------------- build
# The key of the recipe: the build functions' text and the patch. Any change to either rebuilds; nothing else does.
recipe_key() {
  { declare -f fetch_source patch_source make_binaries; cat "$HERE/kubelet-local.patch"
    echo "$DEB_VERSION $WHAT"; } | sha256sum | cut -c1-16
}
pause_key() { { declare -f make_pause; echo "$DEB_VERSION $PAUSE_IMAGE"; } | sha256sum | cut -c1-16; }

install_packages() {
  local missing=""
  for p in $APT_PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=" $p"; done
  [ -z "$missing" ] && return 0
  ts "apt-get install$missing"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || die "apt-get install failed"
}

fetch_source() { # the host has no deb-src: add one for this fetch only, and remove it again whatever happens
  [ -d "$SRC/$TREE" ] && return 0
  local list=/etc/apt/sources.list.d/zz-meshplane-k8s-src.sources
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$list"
  local rc=0
  { apt-get update -qq && mkdir -p "$SRC" && (cd "$SRC" && apt-get source -qq "kubernetes=$DEB_VERSION"); } || rc=1
  rm -f "$list"; apt-get update -qq
  [ $rc = 0 ] || { rm -rf "${SRC:?}/$TREE"; die "apt-get source kubernetes=$DEB_VERSION failed"; }
}

patch_source() {
  cd "$SRC/$TREE" || die "no source tree"
  [ -f .meshplane-patched ] && cmp -s .meshplane-patched "$HERE/kubelet-local.patch" && return 0
  [ -f .meshplane-patched ] && { patch -R -p1 -s <.meshplane-patched || die "cannot revert the old patch"; rm -f .meshplane-patched; }
  # reflect2 1.0.1 -> Debian's 1.0.2 (else the apiserver SIGSEGVs on the first CR create with Go 1.19)
  rm -rf vendor/github.com/modern-go/reflect2 && mkdir vendor/github.com/modern-go/reflect2
  cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s \
    vendor/github.com/modern-go/reflect2/
  patch -p1 -s --dry-run <"$HERE/kubelet-local.patch" || die "kubelet-local.patch does not apply"
  patch -p1 -s <"$HERE/kubelet-local.patch" && cp "$HERE/kubelet-local.patch" .meshplane-patched
}

make_binaries() { # one make shares the code generators and the build cache (_output/local/go/cache)
  cd "$SRC/$TREE" || die "no source tree"
  # vendored build: no module download may happen (GOPROXY=off makes one fail instead of dialing out)
  GOPROXY=off GOSUMDB=off GOFLAGS=-mod=vendor make WHAT="$WHAT" || die "make failed"
  mkdir -p "$BIN.new" && for b in $BINARIES; do cp "_output/local/go/bin/$b" "$BIN.new/" || die "no $b"; done
}

make_pause() { # build/pause/linux/pause.c, static, imported offline under a localhost/ tag
  mkdir -p "$K8S_HOME/pause/rootfs"
  gcc -Os -Wall -Werror -static -DVERSION=v3.4.1-meshplane -o "$K8S_HOME/pause/rootfs/pause" \
    "$SRC/$TREE/build/pause/linux/pause.c" && strip "$K8S_HOME/pause/rootfs/pause" || die "pause build failed"
  tar -C "$K8S_HOME/pause/rootfs" -cf "$K8S_HOME/pause/pause.tar" pause
}

load_pause() {
  docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1 && return 0
  docker import -c 'ENTRYPOINT ["/pause"]' "$K8S_HOME/pause/pause.tar" "$PAUSE_IMAGE" >/dev/null || die "docker import pause"
}

built() { [ "$(cat "$BIN/RECIPE" 2>/dev/null)" = "$(recipe_key)" ] && [ "$(cat "$K8S_HOME/pause/RECIPE" 2>/dev/null)" = "$(pause_key)" ]; }

build() {
  [ "$(id -u)" = 0 ] || die "build needs root (apt-get)"
  if built; then ts "binaries and pause image up to date (recipe $(recipe_key)) in $K8S_HOME"; load_pause; return 0; fi
  install_packages
  if [ "$(cat "$BIN/RECIPE" 2>/dev/null)" != "$(recipe_key)" ]; then
    ts "building Kubernetes $DEB_VERSION (recipe $(recipe_key)); cold: ~18 min on 2 cores"
    fetch_source; ts "source in $SRC/$TREE"
    patch_source; ts "patched (reflect2 1.0.2, kubelet-local.patch)"
    rm -rf "$BIN.new"; make_binaries
    recipe_key >"$BIN.new/RECIPE" && rm -rf "$BIN" && mv "$BIN.new" "$BIN"
    ts "binaries in $BIN"
  fi
  if [ "$(cat "$K8S_HOME/pause/RECIPE" 2>/dev/null)" != "$(pause_key)" ]; then
    fetch_source; make_pause; docker rmi -f "$PAUSE_IMAGE" >/dev/null 2>&1; pause_key >"$K8S_HOME/pause/RECIPE"
  fi
  load_pause; ts "pause image $PAUSE_IMAGE"
}

# ---------------------------------------------------------------------------------------------------- up
k() { "$BIN/kubectl" --kubeconfig "$RUN/admin.kubeconfig" --request-timeout=5s "$@"; }

start() { # name cmd...: a background process whose pid `down` kills
  local n=$1; shift
  nohup "$@" >"$LOGS/$n.log" 2>&1 &
  echo $! >"$PIDS/$n.pid"
}

waitfor() { # what timeout_s cmd...
  local what=$1 timeout=$2; shift 2
  for _ in $(seq $((timeout * 5))); do "$@" >/dev/null 2>&1 && { ts "$what"; return 0; }; sleep 0.2; done
  die "timed out after ${timeout}s waiting for $what (logs: $LOGS)"
}

running() { local p; p=$(cat "$PIDS/$1.pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }

uplink() { ip route show default | awk '{print $5; exit}'; }

make_pki() { # fresh on every `up`: a CA, the apiserver's serving cert, one client cert + kubeconfig per identity
  rm -rf "$PKI" && mkdir -p "$PKI" && cd "$PKI" || die "cannot create $PKI"
  openssl genrsa -out ca.key 2048 2>/dev/null
  openssl req -x509 -new -nodes -key ca.key -subj "/CN=meshplane-local-ca" -days 30 -out ca.crt
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  local client='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'
  sign apiserver kube-apiserver "" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$IP,IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign admin admin system:masters "$client"
  sign kcm system:kube-controller-manager "" "$client"
  sign sched system:kube-scheduler "" "$client"
  sign kubelet "system:node:$NODE" system:nodes "$client"
  sign proxy system:kube-proxy "" "$client"
  sign apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "$client"
  for n in admin kcm sched kubelet proxy; do
    cat >"$RUN/$n.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: meshplane-local
  cluster: {certificate-authority: $PKI/ca.crt, server: "https://$IP:6443"}
users:
- name: $n
  user: {client-certificate: $PKI/$n.crt, client-key: $PKI/$n.key}
contexts:
- name: meshplane-local
  context: {cluster: meshplane-local, user: $n}
current-context: meshplane-local
KC
  done
  cd - >/dev/null
}

sign() { # name CN O extensions
  local subj="/CN=$2"; [ -n "$3" ] && subj="/O=$3/CN=$2"
  openssl genrsa -out "$1.key" 2048 2>/dev/null
  openssl req -new -key "$1.key" -subj "$subj" -out "$1.csr"
  printf '%s\n' "$4" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$1.ext" -out "$1.crt" 2>/dev/null \
    || die "signing $1"
  rm -f "$1.csr" "$1.ext"
}

write_configs() { # CNI conflist (cniVersion 0.4.0: the highest kubelet 1.20's libcni handles), kubelet config, pod resolv.conf
  mkdir -p "$RUN/cni/net.d"
  cat >"$RUN/cni/net.d/10-meshk8s.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "meshk8s", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24", "gateway": "10.244.0.1"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$RUN/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
  cat >"$RUN/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
clusterDomain: cluster.local
resolvConf: $RUN/resolv.conf
failSwapOn: false
# never garbage-collect images: local images cannot be pulled again offline
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
YAML
  # pod DNS never leaves the pod (there is no cluster DNS)
  printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$RUN/resolv.conf"
}

net_up() {
  local up; up=$(uplink); [ -n "$up" ] || die "no default route: cannot place the egress guard"
  echo "$up" >"$RUN/uplink"
  # the apiserver/kubelet address lives on a port-less bridge (the kernel has no dummy driver); an empty bridge drops
  # whatever is sent to it
  ip link show k8s-local0 >/dev/null 2>&1 || {
    ip link add k8s-local0 type bridge && ip addr add "$IP/32" dev k8s-local0 && ip link set k8s-local0 up
  } || die "cannot create k8s-local0"
  # unmatched ClusterIPs fall into the empty bridge, not out of the default route
  ip route replace "$SVC_CIDR" dev k8s-local0
  # egress guard, first in FORWARD: pods talk to pods and to the host, never out of the uplink
  iptables -N MESHK8S-FWD 2>/dev/null || iptables -F MESHK8S-FWD
  iptables -C FORWARD -j MESHK8S-FWD 2>/dev/null || iptables -I FORWARD 1 -j MESHK8S-FWD
  iptables -A MESHK8S-FWD -s "$CLUSTER_CIDR" -o "$up" -j DROP
  iptables -A MESHK8S-FWD -d "$CLUSTER_CIDR" -i "$up" -j DROP
  iptables -A MESHK8S-FWD -i cni0 -o cni0 -j ACCEPT
  iptables -A MESHK8S-FWD -s "$CLUSTER_CIDR" -d "$CLUSTER_CIDR" -j ACCEPT
  # Docker's FORWARD policy is DROP (and br_netfilter is on): let replies back in to the pods
  iptables -A MESHK8S-FWD -d "$CLUSTER_CIDR" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
  # sysctls kubelet and kube-proxy change, restored by `down`
  [ -f "$RUN/sysctl.saved" ] || sysctl -n vm.overcommit_memory kernel.panic kernel.panic_on_oops \
    net.ipv4.conf.all.route_localnet | paste -sd' ' >"$RUN/sysctl.saved"
}

control_up() {
  start etcd /usr/bin/etcd --name local --data-dir "$RUN/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster local=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
  waitfor "etcd healthy" 30 curl -sf --noproxy '*' http://127.0.0.1:2379/health

  start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address=$IP --advertise-address=$IP --secure-port=6443 \
    --service-cluster-ip-range=$SVC_CIDR --service-node-port-range=30000-32767 \
    --client-ca-file="$PKI/ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --allow-privileged=true --enable-aggregator-routing=true --profiling=false --v=1
  waitfor "apiserver ready" 60 k get --raw /readyz

  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$RUN/kcm.kubeconfig" \
    --authentication-kubeconfig="$RUN/kcm.kubeconfig" --authorization-kubeconfig="$RUN/kcm.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10257 --port=0 \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --controllers='*,bootstrapsigner,tokencleaner' \
    --allocate-node-cidrs=true --cluster-cidr=$CLUSTER_CIDR --node-cidr-mask-size=24 \
    --service-cluster-ip-range=$SVC_CIDR --profiling=false --v=1

  start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$RUN/sched.kubeconfig" \
    --authentication-kubeconfig="$RUN/sched.kubeconfig" --authorization-kubeconfig="$RUN/sched.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=10259 --port=0 --leader-elect=false --profiling=false --v=1
}

node_up() {
  # belt and braces with kubelet-local.patch: the AWS SDK's metadata client is off and points at a closed local port
  start kubelet env AWS_EC2_METADATA_DISABLED=true AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9 "$BIN/kubelet" \
    --config="$RUN/kubelet-config.yaml" --kubeconfig="$RUN/kubelet.kubeconfig" \
    --hostname-override=$NODE --node-ip=$IP \
    --container-runtime=docker --docker-endpoint=unix:///var/run/docker.sock \
    --pod-infra-container-image=$PAUSE_IMAGE \
    --network-plugin=cni --cni-bin-dir=/usr/lib/cni --cni-conf-dir="$RUN/cni/net.d" --cni-cache-dir="$RUN/cni/cache" \
    --root-dir="$RUN/kubelet" --cert-dir="$RUN/kubelet/pki" --oom-score-adj=0 --v=1

  start kube-proxy "$BIN/kube-proxy" \
    --kubeconfig="$RUN/proxy.kubeconfig" --hostname-override=$NODE \
    --proxy-mode=iptables --cluster-cidr=$CLUSTER_CIDR \
    --bind-address=$IP --healthz-bind-address=127.0.0.1:10256 --metrics-bind-address=127.0.0.1:10249 \
    --nodeport-addresses=$IP/32 \
    --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
    --oom-score-adj=0 --profiling=false --v=1

  waitfor "node $NODE Ready" 120 k wait --for=condition=Ready "node/$NODE" --timeout=1s
  waitfor "ServiceAccount default/default" 60 k get sa default -n default
}

# Sockets whose peer is off this machine: routed out of a device that leaves the host (the uplink, or any device
# that is not loopback, a bridge or a veth), per `ip route get`. Docker's and the pods' bridges are on the machine.
foreign_sockets() {
  local line peer route dev
  ss -tunpH | while read -r line; do
    peer=$(awk '{print $6}' <<<"$line"); peer=${peer%:*}; peer=${peer#[}; peer=${peer%]}; peer=${peer#::ffff:}
    peer=${peer%%%*}
    case "$peer" in '*'|0.0.0.0|::|::1|127.*) continue ;; esac
    route=$(ip route get "$peer" 2>/dev/null | head -1) || { echo "$line"; continue; }
    case "$route" in local\ *) continue ;; esac
    dev=$(sed -n 's/.* dev \([^ ]*\).*/\1/p' <<<"$route")
    [ -n "$dev" ] && { [ -d "/sys/class/net/$dev/bridge" ] || [ "$dev" = lo ] ||
      ip -d link show "$dev" 2>/dev/null | grep -q ' veth '; } && continue
    echo "$line"
  done
}

check_no_foreign_sockets() {
  local bad; bad=$(foreign_sockets)
  if [ -n "$bad" ]; then
    printf '%s\n' "$bad" >&2
    die "a socket points outside this machine (above, from ss -tunp): refusing to keep the cluster up"
  fi
  ts "ss -tunp: no socket points outside this machine"
}

up() {
  [ "$(id -u)" = 0 ] || die "up needs root (network, iptables, kubelet)"
  docker info >/dev/null 2>&1 || die "no Docker engine (docker info fails)"
  built || die "not built for this recipe: run $0 build first (~18 min cold)"
  for n in $COMPONENTS; do running "$n" && die "$n is already running: $0 down first"; done
  load_pause
  mkdir -p "$LOGS" "$PIDS" "$RUN/etcd" "$RUN/kubelet" "$RUN/cni/cache"
  # host paths kubelet/dockershim hard-code: `down` removes only the ones `up` created
  for d in /var/log/pods /var/log/containers /var/lib/dockershim /var/lib/kubelet; do
    [ -e "$d" ] || grep -qx "$d" "$RUN/created-paths" 2>/dev/null || echo "$d" >>"$RUN/created-paths"
  done
  make_pki; write_configs; ts "PKI and configs in $RUN"
  net_up; ts "network: k8s-local0 $IP, Services $SVC_CIDR, egress guard on $(cat "$RUN/uplink")"
  # anything failing from here on leaves nothing behind
  trap 'ts "up failed: tearing down"; down >/dev/null 2>&1' EXIT
  control_up
  node_up
  check_no_foreign_sockets
  trap - EXIT
  ts "cluster up; KUBECONFIG=$RUN/admin.kubeconfig"
  echo "$RUN/admin.kubeconfig"
}

# ---------------------------------------------------------------------------------------------------- down
iptables_cleanup() { # KUBE-* (kubelet, kube-proxy) and CNI-* (portmap) jumps and chains; kube-proxy --cleanup misses some
  local cmd=$1 t c
  command -v "$cmd" >/dev/null || return 0
  for t in filter nat mangle; do
    "$cmd" -t $t -S 2>/dev/null | grep -E -- '-j (KUBE|CNI)-' | grep -vE '^-A (KUBE|CNI)-' | sed 's/^-A/-D/' |
      while read -r rule; do eval "$cmd" -t $t "$rule"; done
    for c in $("$cmd" -t $t -S 2>/dev/null | awk '/^-N (KUBE|CNI)-/{print $2}'); do "$cmd" -t $t -F "$c"; done
    for c in $("$cmd" -t $t -S 2>/dev/null | awk '/^-N (KUBE|CNI)-/{print $2}'); do "$cmd" -t $t -X "$c"; done
  done
}

down() {
  local n p ids pids=""
  # the node first (no new pods), then the control plane; all stopping together, killed after 5 s
  for n in kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do
    p=$(cat "$PIDS/$n.pid" 2>/dev/null) || continue
    kill "$p" 2>/dev/null && pids+=" $p"
  done
  local alive
  for _ in $(seq 50); do
    alive=0; for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in $pids; do kill -9 "$p" 2>/dev/null; done
  rm -f "$PIDS"/*.pid
  ts "processes stopped"
  # the pod containers and sandboxes dockershim made carry this label
  ids=$(docker ps -aq --filter label=io.kubernetes.docker.type 2>/dev/null)
  [ -n "$ids" ] && docker rm -f -v $ids >/dev/null
  ts "pod containers removed"
  [ -x "$BIN/kube-proxy" ] && "$BIN/kube-proxy" --cleanup >/dev/null 2>&1
  iptables_cleanup iptables; iptables_cleanup ip6tables
  iptables -D FORWARD -j MESHK8S-FWD 2>/dev/null; iptables -F MESHK8S-FWD 2>/dev/null; iptables -X MESHK8S-FWD 2>/dev/null
  # kubelet's tmpfs mounts (secrets, projected tokens) under its root dir
  grep -F " $RUN/kubelet" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  ip link del cni0 2>/dev/null; ip route del "$SVC_CIDR" dev k8s-local0 2>/dev/null; ip link del k8s-local0 2>/dev/null
  [ -f "$RUN/created-paths" ] && xargs -r rm -rf <"$RUN/created-paths" && rm -f "$RUN/created-paths"
  for c in /sys/fs/cgroup/*/kubepods; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
  if [ -f "$RUN/sysctl.saved" ]; then
    local a b c d; read -r a b c d <"$RUN/sysctl.saved"
    sysctl -q vm.overcommit_memory="$a" kernel.panic="$b" kernel.panic_on_oops="$c" net.ipv4.conf.all.route_localnet="$d"
    rm -f "$RUN/sysctl.saved"
  fi
  # keep the logs of the last run; everything else (PKI included) goes
  rm -rf "$RUN/etcd" "$RUN/kubelet" "$RUN/cni" "$PKI" "$RUN"/*.kubeconfig "$RUN/kubelet-config.yaml" "$RUN/resolv.conf" \
    "$RUN/uplink"
  ts "down"
}

status() {
  local n rc=0
  for n in $COMPONENTS; do
    if running "$n"; then echo "$n running (pid $(cat "$PIDS/$n.pid"))"; else echo "$n not running"; rc=1; fi
  done
  built && echo "built: recipe $(recipe_key) in $BIN" || echo "not built for recipe $(recipe_key)"
  [ $rc = 0 ] && { echo "KUBECONFIG=$RUN/admin.kubeconfig"; k get nodes -o wide; }
  return $rc
}

why_not() { # why `up` cannot run here (nothing printed, status 0: it can)
  if [ "$(id -u)" != 0 ]; then echo "the local Kubernetes cluster needs root (network devices, iptables, kubelet)"
  elif ! docker info >/dev/null 2>&1; then echo "the local Kubernetes cluster needs a running Docker engine (docker info fails)"
  elif ! built; then echo "the local Kubernetes binaries are not built for recipe $(recipe_key) in $K8S_HOME: run $0 build (~18 min cold, once)"
  else return 0; fi
  return 1
}

case "${1:-}" in
  build) build ;;
  why-not) why_not ;;
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 build|up|down|status|why-not" >&2; exit 2 ;;
esac
