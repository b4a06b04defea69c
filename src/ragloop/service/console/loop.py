"""Jobs (start a retrain, follow it live, cancel it, read its log) and model versions
(gate summaries, each gate report beside the version it challenged, activate or roll back).
Every action goes through the ``/admin`` routes' own functions, so options are validated and
jobs run exactly as over the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ragloop.core.errors import AuthError, InvalidInputError, RagloopError
from ragloop.core.records import ModelVersion
from ragloop.core.storage.jobs import Job
from ragloop.finetune.jobspec import JobFiles
from ragloop.finetune.options import ALL_SOURCES, RetrainOptions
from ragloop.service.console import session as sessions
from ragloop.service.console.web import done, page, signed_in, to_login, validation_error
from ragloop.service.native import admin
from ragloop.service.state import AppState

router = APIRouter(include_in_schema=False)
LOSSES = ("mnrl", "matryoshka", "triplet", "online-contrastive", "tsdae")
#: Form fields that are numbers (empty: the option's default).
NUMBERS = {
    "epochs": float,
    "batch_size": int,
    "learning_rate": float,
    "max_synthetic_chunks": int,
    "min_gate_questions": int,
    "margin": float,
}
TEXTS = ("gate_dataset", "gate_split")
FLAGS = ("hard_negatives", "lora", "query_only")
#: Characters of a failed job's worker log the page shows.
LOG_CHARS = 4000


def _field(value: object) -> str | None:
    return value if isinstance(value, str) else None


def options_from_form(form: FormData) -> RetrainOptions:
    """The retrain form as ``RetrainOptions`` (the model ``POST /admin/retrain`` validates
    with); ``options_json`` may add any other option, the fields win over it."""
    raw: dict[str, Any] = {}
    extra = (_field(form.get("options_json")) or "").strip()
    if extra:
        try:
            parsed = json.loads(extra)
        except ValueError as exc:
            raise InvalidInputError(f"more options: not valid JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise InvalidInputError("more options: must be a JSON object")
        raw |= parsed
    raw["sources"] = [s for s in form.getlist("sources") if isinstance(s, str)]
    loss = _field(form.get("loss"))
    if loss:
        raw["loss"] = loss
    for name in FLAGS:
        raw[name] = form.get(name) == "on"
    for name, kind in NUMBERS.items():
        value = (_field(form.get(name)) or "").strip()
        if value:
            try:
                raw[name] = kind(value)
            except ValueError:
                raise InvalidInputError(f"{name}: {value!r} is not a number") from None
    for name in TEXTS:
        value = (_field(form.get(name)) or "").strip()
        if value:
            raw[name] = value
    try:
        return RetrainOptions.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc) from None


def log_tail(state: AppState, job: Job) -> str:
    """The end of a failed retrain's worker log ('' when there is none)."""
    if job.kind != "retrain" or job.state != "failed":
        return ""
    files = JobFiles(state.settings.data_dir / "jobs" / job.id)
    try:
        return files.log_tail()[-LOG_CHARS:]
    except OSError:
        return ""


def job_json(state: AppState, job: Job) -> dict[str, Any]:
    """What the jobs page polls."""
    result = job.result or {}
    gate = result.get("gate") if isinstance(result.get("gate"), dict) else None
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "done": job.done,
        "progress": round(job.progress, 4),
        "message": job.message,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "loss": result.get("loss"),
        "version": result.get("version"),
        "gate_reason": gate.get("reason") if gate else None,
        "log_tail": log_tail(state, job),
    }


def _jobs_page(
    request: Request,
    state: AppState,
    session: sessions.Session,
    selected: str | None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    recent = state.jobs.recent(None, 30)
    chosen = next((j for j in recent if j.id == selected), None) if selected else None
    if selected and chosen is None:
        try:
            chosen = state.jobs.get(selected)
        except RagloopError as exc:
            error = error or exc.message
    chosen = chosen or next((j for j in recent if j.kind == "retrain"), None)
    return page(
        request,
        "jobs.html",
        session,
        status=status,
        title="Jobs",
        jobs=recent,
        job=job_json(state, chosen) if chosen else None,
        defaults=RetrainOptions(),
        sources=ALL_SOURCES,
        losses=LOSSES,
        error=error,
        running=state.retrain.running(),
    )


@router.get("/console/jobs")
async def jobs_page(request: Request, job: str | None = None) -> Response:
    """The retrain form, recent jobs and the selected job, followed live."""
    state, session = signed_in(request)
    if session is None:
        return to_login(request)
    return _jobs_page(request, state, session, job)


@router.post("/console/jobs/retrain")
async def start_retrain(request: Request) -> Response:
    """Start a retrain with the form's options (``POST /admin/retrain``'s own code)."""
    state, session = signed_in(request)
    if session is None:
        raise AuthError("sign in to the console first (/console/login)")
    form = await request.form()
    sessions.check_csrf(session, request, _field(form.get("csrf")))
    try:
        options = options_from_form(form)
        job = await admin.retrain(request, options)
    except RagloopError as exc:
        if _json(request):
            raise
        return _jobs_page(request, state, session, None, exc.message, exc.http_status)
    return done(request, f"/console/jobs?job={job.id}", job_json(state, state.jobs.get(job.id)))


@router.get("/console/api/jobs/{job_id}")
async def job_status(request: Request, job_id: str) -> JSONResponse:
    """One job's state, progress and, if it failed, its log tail (polled by the page)."""
    state, session = signed_in(request)
    if session is None:
        raise AuthError("sign in to the console first (/console/login)")
    return JSONResponse(
        job_json(state, state.jobs.get(job_id)), headers={"Cache-Control": "no-store"}
    )


@router.post("/console/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str) -> Response:
    """Cancel a running retrain (``POST /admin/jobs/{id}/cancel``'s own code)."""
    state, session = signed_in(request)
    if session is None:
        raise AuthError("sign in to the console first (/console/login)")
    form = await request.form()
    sessions.check_csrf(session, request, _field(form.get("csrf")))
    await admin.cancel(job_id, request)
    return done(request, f"/console/jobs?job={job_id}", job_json(state, state.jobs.get(job_id)))


def _json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


# ---- versions --------------------------------------------------------------------------------


def gate_summary(gate: dict[str, Any] | None) -> dict[str, Any] | None:
    """The few numbers of a gate report a list can show."""
    if not gate:
        return None
    primary = str(gate.get("primary", "ndcg@10"))
    current = gate.get("current") or {}
    candidate = gate.get("candidate") or {}
    return {
        "promote": bool(gate.get("promote")),
        "primary": primary,
        "current": current.get(primary),
        "candidate": candidate.get(primary),
        "delta": gate.get("delta"),
        "n_queries": gate.get("n_queries"),
        "reason": gate.get("reason", ""),
    }


def metric_rows(gate: dict[str, Any]) -> list[dict[str, Any]]:
    """Every metric of a gate report: the challenged version's score, the candidate's, the
    change (families in the report's order, each by cut-off)."""
    current = gate.get("current") or {}
    candidate = gate.get("candidate") or {}
    names = list(dict.fromkeys([*current, *candidate]))
    families = list(dict.fromkeys(n.partition("@")[0] for n in names))

    def key(name: str) -> tuple[int, int, str]:
        family, _, k = name.partition("@")
        return families.index(family), int(k) if k.isdigit() else 0, name

    rows = []
    for name in sorted(names, key=key):
        cur, cand = current.get(name), candidate.get(name)
        delta = None
        if isinstance(cur, (int, float)) and isinstance(cand, (int, float)):
            delta = cand - cur
        rows.append(
            {
                "name": name,
                "current": cur,
                "candidate": cand,
                "delta": delta,
                "primary": name == gate.get("primary"),
            }
        )
    return rows


def recipe_rows(gate: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Both fusion recipes, field by field (empty: dense retrieval, no recipes)."""
    current = gate.get("current_recipe") or {}
    candidate = gate.get("candidate_recipe") or {}
    keys = [*current, *(k for k in candidate if k not in current)]
    return [(k, current.get(k), candidate.get(k)) for k in keys]


#: Every field of a gate report (``finetune.gate.GateResult``) with what a report written
#: before that field existed stands for.
GATE_FIELDS: dict[str, Any] = {
    "gate_set": "held-out pairs",
    "n_queries": 0,
    "primary": "ndcg@10",
    "current": {},
    "candidate": {},
    "delta": None,
    "margin": None,
    "promote": False,
    "reason": "",
    "delta_lower_bound": None,
    "min_questions": 0,
    "retrieval": "dense",
    "current_recipe": None,
    "candidate_recipe": None,
    "recipes": None,
    "recipe_questions": None,
    "forgetting": None,
    "question_origins": None,
    "per_question": None,
}
#: How many of the largest wins, and of the largest losses, the version page lists.
TOP_QUESTIONS = 10
#: A per-question change smaller than this is a tie.
TIE = 1e-6


def question_changes(gate: dict[str, Any]) -> dict[str, Any] | None:
    """Per-question wins, losses and ties of the candidate over the version it challenged,
    with the largest of each (None: the report stores no per-question scores)."""
    stored = gate.get("per_question")
    if not isinstance(stored, list) or not stored:
        return None
    rows: list[dict[str, Any]] = []
    for item in stored:
        if not isinstance(item, dict):
            continue
        cur, cand = item.get("current"), item.get("candidate")
        if not isinstance(cur, (int, float)) or not isinstance(cand, (int, float)):
            continue
        rows.append(
            {
                "question": str(item.get("question", "")),
                "current": float(cur),
                "candidate": float(cand),
                "delta": float(cand) - float(cur),
            }
        )
    wins = sorted((r for r in rows if r["delta"] > TIE), key=lambda r: -r["delta"])
    losses = sorted((r for r in rows if r["delta"] < -TIE), key=lambda r: r["delta"])
    return {
        "n": len(rows),
        "wins": len(wins),
        "losses": len(losses),
        "ties": len(rows) - len(wins) - len(losses),
        "top_wins": wins[:TOP_QUESTIONS],
        "top_losses": losses[:TOP_QUESTIONS],
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def version_report(state: AppState, mv: ModelVersion) -> dict[str, Any]:
    """What the version page shows: its gate report beside the version it challenged, the
    training manifest and run (the job's record, else the files kept beside the weights)."""
    stored = mv.info.get("gate")
    gate = GATE_FIELDS | stored if isinstance(stored, dict) else None
    job: Job | None = None
    job_id = mv.info.get("job_id")
    if isinstance(job_id, str):
        try:
            job = state.jobs.get(job_id)
        except RagloopError:
            job = None
    model_dir = Path(mv.model_ref)
    manifest = (job.result or {}).get("manifest") if job is not None else None
    if not isinstance(manifest, dict):
        manifest = _read_json(model_dir / "manifest.json") if mv.parent else None
    training = _read_json(model_dir / "training.json") if mv.parent else None
    recipes = (gate or {}).get("recipes") or {}
    chosen = ((gate or {}).get("candidate_recipe") or {}).get("label")
    return {
        "gate": gate,
        "metrics": metric_rows(gate) if gate else [],
        "recipes": recipe_rows(gate) if gate else [],
        "questions": question_changes(gate) if gate else None,
        "grid": sorted(recipes.items(), key=lambda kv: -kv[1]) if isinstance(recipes, dict) else [],
        "chosen_recipe": chosen,
        "manifest": manifest,
        "training": training,
        "job": job,
    }


def show(value: Any) -> str:
    """A report value as one line of text (numbers to 4 places, nested values flattened)."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    if isinstance(value, dict):
        return ", ".join(f"{k}: {show(v)}" for k, v in value.items()) or "–"
    if isinstance(value, (list, tuple)):
        return ", ".join(show(v) for v in value) or "–"
    return str(value)


@router.get("/console/versions")
async def versions_page(request: Request) -> Response:
    """Every model version with its gate summary; activate or roll back a kept one."""
    _, session = signed_in(request)
    if session is None:
        return to_login(request)
    return _versions(request, session)


def _versions(
    request: Request, session: sessions.Session, error: str | None = None, status: int = 200
) -> Response:
    versions = admin.version_out(request)
    return page(
        request,
        "versions.html",
        session,
        status=status,
        title="Versions",
        versions=versions,
        summaries={v.version: gate_summary(v.gate) for v in versions},
        error=error,
    )


@router.get("/console/versions/{version}")
async def version_page(request: Request, version: str) -> Response:
    """One version's gate report beside the version it challenged, its training manifest and
    both recipes."""
    state, session = signed_in(request)
    if session is None:
        return to_login(request)
    try:
        mv = state.runtime.catalog.get_version(version)
    except RagloopError as exc:
        return _versions(request, session, exc.message, exc.http_status)
    listed = {v.version: v for v in admin.version_out(request)}
    parent = listed.get(mv.parent) if mv.parent else None
    return page(
        request,
        "version.html",
        session,
        title=f"Version {mv.version}",
        v=listed.get(mv.version),
        mv=mv,
        parent=parent,
        report=await run_in_threadpool(version_report, state, mv),
        show=show,
    )


@router.get("/console/versions/{version}/activate")
async def confirm_activate(request: Request, version: str) -> Response:
    """The confirmation step before a rollback or roll-forward."""
    _, session = signed_in(request)
    if session is None:
        return to_login(request)
    versions = {v.version: v for v in admin.version_out(request)}
    if version not in versions:
        return RedirectResponse("/console/versions", status_code=303)
    active = next((v for v in versions.values() if v.active), None)
    return page(
        request,
        "activate.html",
        session,
        title="Activate a version",
        target=versions[version],
        active=active,
        summary=gate_summary(versions[version].gate),
    )


@router.post("/console/versions/{version}/activate")
async def activate(request: Request, version: str) -> Response:
    """Activate a kept version (``POST /admin/models/{version}/activate``'s own code)."""
    _, session = signed_in(request)
    if session is None:
        raise AuthError("sign in to the console first (/console/login)")
    form = await request.form()
    sessions.check_csrf(session, request, _field(form.get("csrf")))
    if form.get("confirm") != version:
        raise InvalidInputError("confirm the activation: the form must repeat the version")
    try:
        versions = await admin.activate(version, request)
    except RagloopError as exc:
        if _json(request):
            raise
        return _versions(request, session, exc.message, exc.http_status)
    return done(
        request,
        "/console/versions",
        {"active": next((v.version for v in versions if v.active), None)},
    )
