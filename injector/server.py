"""``POST /inject`` over HTTPS (istiod's injection endpoint, port 15017 behind the Service's 443) and ``GET /ready``.

``answer_review`` is the whole webhook without HTTP: the AdmissionReview in, the answer out. What the cluster says
(``AdmissionFacts``) is read in a worker thread (``ClusterFacts``); the injection itself is pure and quick, on the
event loop. A pod that is not a CREATE of a Pod is allowed untouched; a pod the API server's facts cannot be read
for is refused (the webhook's selectors asked for it: letting it through without a sidecar would put it outside the
mesh unnoticed)."""

from __future__ import annotations

import json
import ssl
from typing import Any, Protocol

import structlog
from aiohttp import web

from injector.annotations import InjectionRefused
from injector.patch import injection_patch
from injector.review import AdmissionRequest, ReviewError, parse_review, review_answer
from injector.settings import AdmissionFacts, InjectorSettings

__all__ = ["FactsSource", "InjectorServer", "answer_review"]

log = structlog.get_logger(__name__)

MAX_REVIEW_BYTES = 4 * 1024 * 1024  # above the API server's own request limit (3 MiB)


class FactsSource(Protocol):
    async def facts(self, namespace: str) -> AdmissionFacts: ...


async def _answer(request: AdmissionRequest, settings: InjectorSettings, source: FactsSource) -> dict[str, Any]:
    if not request.is_pod_create:
        return review_answer(request)
    meta = request.object.get("metadata") or {}
    pod = meta.get("name") or f"{meta.get('generateName', '')}<generated>"
    try:
        facts = await source.facts(request.namespace)
    except Exception as exc:  # the API server's answer, whatever it was: the pod is refused, saying why
        log.warning("cannot read the namespace; pod refused", namespace=request.namespace, pod=pod, error=str(exc))
        refusal = f"meshplane sidecar injector: cannot read namespace {request.namespace}: {exc}"
        return review_answer(request, refusal=refusal)
    try:
        patch, reason = injection_patch(request.object, request.namespace, settings, facts)
    except InjectionRefused as exc:
        log.info("pod refused", namespace=request.namespace, pod=pod, reason=str(exc))
        return review_answer(request, refusal=str(exc))
    log.info("pod admitted", namespace=request.namespace, pod=pod, injected=patch is not None, reason=reason)
    return review_answer(request, patch=patch)


async def answer_review(body: Any, settings: InjectorSettings, source: FactsSource) -> dict[str, Any]:
    """The AdmissionReview answering ``body``; ``ReviewError`` when it is not an AdmissionReview request."""
    return await _answer(parse_review(body), settings, source)


class InjectorServer:
    """The HTTPS server (``ssl_context``: the serving identity's, reloaded in place when renewed)."""

    def __init__(self, settings: InjectorSettings, source: FactsSource) -> None:
        self._settings = settings
        self._source = source
        self._runner: web.AppRunner | None = None
        self.port = 0

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REVIEW_BYTES)
        app.router.add_post("/inject", self._inject)
        app.router.add_get("/ready", self._ready)
        return app

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only there
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _inject(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            answer = await answer_review(body, self._settings, self._source)
        except (ValueError, ReviewError) as exc:  # json.JSONDecodeError is a ValueError
            return web.Response(status=400, text=f"400 Bad Request: {exc}\n")
        return web.json_response(answer)

    async def _ready(self, _: web.Request) -> web.Response:
        return web.Response(text="ready\n")
