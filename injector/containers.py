"""The containers and volumes the injector adds, as Kubernetes JSON: the Kubernetes form of what docker-compose.yml
runs per pod (``<app>-init``: ``meshplane capture install --redirect-dns`` with NET_ADMIN; ``<app>-sidecar``:
``meshplane-agent sidecar`` as uid 1337 with the workload's token and the mesh's root certificate).

The sidecar's identity comes from the downward API at container start (``$(VAR)`` in its args: the pod's name,
namespace, IP, service account and label values), not from the admission request: a pod made from ``generateName``
has no name yet when it is admitted.

The sidecar serves the agent's status port (``agent.status_server``, 15020, excluded from the inbound capture by
``-d``): its own readiness probe is Istio's ``/healthz/ready`` there, and the app's probes the injector rewrote
(``injector.app_probes``) are passed to it in ``ISTIO_KUBE_APP_PROBERS``, as Istio's injector does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent.app_probers import APP_PROBERS_ENV, READY_PATH, STATUS_PORT
from agent.capture import CaptureOptions
from injector.annotations import SidecarOptions
from injector.names import (
    INIT_CONTAINER,
    PROXY_CONTAINER,
    ROOT_CERT_CONFIGMAP,
    ROOT_CERT_DIR,
    ROOT_CERT_FILE,
    ROOT_CERT_VOLUME,
    TOKEN_AUDIENCE,
    TOKEN_DIR,
    TOKEN_FILE,
    TOKEN_VOLUME,
    WORK_DIR,
    WORK_VOLUME,
)
from injector.settings import ControlPlane, InjectorSettings
from meshplane.names import ADMIN_PORT, PROXY_UID

__all__ = [
    "HOLD_TIMEOUT_SECONDS",
    "POD_RESOLV_CONF",
    "TOKEN_EXPIRATION_SECONDS",
    "capture_flags",
    "init_container",
    "injected_volumes",
    "sidecar_container",
]

Obj = dict[str, Any]
TOKEN_EXPIRATION_SECONDS = 43200  # Istio's: 12 h, renewed by the kubelet
HOLD_TIMEOUT_SECONDS = 60  # holdApplicationUntilProxyStarts: the longest the app waits for Envoy
_READY_URL = f"http://127.0.0.1:{ADMIN_PORT}/ready"
POD_RESOLV_CONF = "/etc/resolv.conf"
_DOWNWARD = {  # env -> fieldRef
    "POD_NAME": "metadata.name",
    "POD_NAMESPACE": "metadata.namespace",
    "INSTANCE_IP": "status.podIP",
    "SERVICE_ACCOUNT": "spec.serviceAccountName",
}


def _join(values: Sequence[object]) -> str:
    return ",".join(map(str, values))


def capture_flags(options: CaptureOptions) -> list[str]:
    """``meshplane capture install``'s flags for ``options`` (every flag written out, as Istio's injector does)."""
    include = options.include_outbound_cidrs
    inbound = options.include_inbound_ports
    flags = ["-p", str(options.proxy_port), "-z", str(options.inbound_port)]
    flags += ["-u", _join(options.proxy_uids), "-g", _join(options.proxy_gids), "-m", "REDIRECT"]
    flags += ["-i", include if include == "*" else _join(include), "-x", _join(options.exclude_outbound_cidrs)]
    flags += ["-b", inbound if inbound == "*" else _join(inbound), "-d", _join(options.exclude_inbound_ports)]
    flags += ["-o", _join(options.exclude_outbound_ports), "-q", _join(options.include_outbound_ports)]
    return flags + (["--redirect-dns"] if options.redirect_dns else [])


def init_container(options: SidecarOptions, settings: InjectorSettings) -> Obj:
    """Istio's ``istio-init``: the capture rules, as root with NET_ADMIN and NET_RAW, then exits."""
    return {
        "name": INIT_CONTAINER,
        "image": options.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["meshplane", "capture", "install", *capture_flags(options.capture)],
        "resources": {"requests": {"cpu": "10m", "memory": "40Mi"}, "limits": {"cpu": "2000m", "memory": "1024Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": False,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        },
    }


def _label_env(labels: Mapping[str, str]) -> tuple[list[Obj], str]:
    """One downward-API variable per label key and the ``--labels`` value naming them."""
    keys = sorted(labels)
    env = [
        {"name": f"ISTIO_LABEL_{index}", "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{key}']"}}}
        for index, key in enumerate(keys)
    ]
    return env, ",".join(f"{key}=$(ISTIO_LABEL_{index})" for index, key in enumerate(keys))


def _sidecar_args(
    options: SidecarOptions, settings: InjectorSettings, control_plane: ControlPlane, labels: str
) -> list[str]:
    args = ["meshplane-agent", "sidecar", "--workload", "$(POD_NAME)", "--namespace", "$(POD_NAMESPACE)"]
    args += ["--ip", "$(INSTANCE_IP)", "--service-account", "$(SERVICE_ACCOUNT)", "--labels", labels]
    args += ["--pilot", control_plane.pilot, "--citadel", control_plane.citadel]
    args += ["--token-file", f"{TOKEN_DIR}/{TOKEN_FILE}", "--root-cert", f"{ROOT_CERT_DIR}/{ROOT_CERT_FILE}"]
    if control_plane.mixer is not None:
        args += ["--mixer", control_plane.mixer]
    args += ["--domain-suffix", settings.domain_suffix, "--envoy-log-level", options.log_level]
    if options.proxy_config is not None:  # "$$": a literal "$" where Kubernetes expands $(VAR) references
        args += ["--proxy-config", options.proxy_config.replace("$", "$$")]
    # names outside the mesh: the resolvers the kubelet wrote for this pod (kube-dns, dnsConfig, or the node's)
    return [*args, "--dns-upstreams-from", POD_RESOLV_CONF]


def _hold_until_ready() -> Obj:
    """postStart: the kubelet starts the next container only once this returns, i.e. once Envoy is ready."""
    script = (
        f"i=0; until python -m agent.probe {_READY_URL} >/dev/null 2>&1; do i=$((i+1)); "
        f"[ $i -ge {HOLD_TIMEOUT_SECONDS * 5} ] && exit 1; sleep 0.2; done"
    )
    return {"postStart": {"exec": {"command": ["sh", "-c", script]}}}


def sidecar_container(
    options: SidecarOptions,
    settings: InjectorSettings,
    control_plane: ControlPlane,
    *,
    labels: Mapping[str, str],
    app_probers: str | None = None,
) -> Obj:
    """Istio's ``istio-proxy``: ``meshplane-agent sidecar`` as uid/gid 1337, ready when Envoy is; ``app_probers``:
    the JSON of the app's rewritten probes."""
    label_env, label_arg = _label_env(labels)
    env = [{"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}} for name, path in _DOWNWARD.items()]
    if app_probers is not None:
        label_env.append({"name": APP_PROBERS_ENV, "value": app_probers})
    container: Obj = {
        "name": PROXY_CONTAINER,
        "image": options.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": _sidecar_args(options, settings, control_plane, label_arg),
        "env": env + label_env,
        "readinessProbe": {
            "httpGet": {"path": READY_PATH, "port": STATUS_PORT, "scheme": "HTTP"},
            "initialDelaySeconds": 1,
            "periodSeconds": 2,
            "timeoutSeconds": 3,
            "failureThreshold": 30,
        },
        "resources": {"requests": dict(options.requests), "limits": dict(options.limits)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": True,
            "runAsUser": PROXY_UID,
        },
        "volumeMounts": [
            {"name": WORK_VOLUME, "mountPath": WORK_DIR},
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": ROOT_CERT_VOLUME, "mountPath": ROOT_CERT_DIR, "readOnly": True},
        ],
    }
    if options.hold_application:
        container["lifecycle"] = _hold_until_ready()
    return container


def injected_volumes() -> list[Obj]:
    """The sidecar's work directory (memory), its ``istio-ca`` token and the mesh's root certificate."""
    token = {"audience": TOKEN_AUDIENCE, "expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": TOKEN_FILE}
    return [
        {"name": WORK_VOLUME, "emptyDir": {"medium": "Memory"}},
        {"name": TOKEN_VOLUME, "projected": {"sources": [{"serviceAccountToken": token}]}},
        {"name": ROOT_CERT_VOLUME, "configMap": {"name": ROOT_CERT_CONFIGMAP}},
    ]
