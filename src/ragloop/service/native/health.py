"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the model is loaded and the catalog and store answer."""
    state = getattr(request.app.state, "rl", None)
    if state is None or not state.ready.is_set():
        return JSONResponse({"status": "starting"}, status_code=503)
    try:
        active = state.runtime.catalog.active_version()
        state.runtime.store.count(active.collection)
    except Exception as exc:  # a dependency is down: not ready, with the reason
        return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready", "model_version": active.version})


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    state = getattr(request.app.state, "rl", None)
    if state is None:
        return Response("starting\n", status_code=503, media_type="text/plain")
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")
