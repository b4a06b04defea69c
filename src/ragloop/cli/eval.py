"""``ragloop eval``: retrieval quality on a BEIR dataset, per model and dimension, with plots."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from ragloop.cli.common import (
    DataDir,
    JsonFlag,
    app,
    emit_json,
    err,
    handled,
    out,
    progress_bar,
    progress_callback,
)

if TYPE_CHECKING:
    from ragloop.core.fusion import RetrievalMode
    from ragloop.core.settings import Settings
    from ragloop.eval.datasets import BeirDataset
    from ragloop.eval.report import RetrievalReport


class Mode(StrEnum):
    """Where retrieval runs."""

    model = "model"
    service = "service"


class Precision(StrEnum):
    """Embedder precision (overrides RAGLOOP_PRECISION)."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"


@app.command("eval")
def eval_command(
    dataset: Annotated[
        Path, typer.Option("--dataset", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/.")
    ],
    split: Annotated[str, typer.Option("--split", help="Qrels split to score.")] = "test",
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="'active', a model version id, a model directory or a registered name; "
            "repeat to compare models side by side.",
        ),
    ] = None,
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode",
            help="model: exact search over the dataset's corpus; "
            "service: the live retriever over the ingested data dir.",
        ),
    ] = Mode.model,
    dims: Annotated[
        str | None,
        typer.Option("--dims", help="Matryoshka dimensions to score, e.g. 384,256,128,64."),
    ] = None,
    retrieval: Annotated[
        str | None,
        typer.Option(
            "--retrieval",
            help="Service mode: retrieval modes to score side by side, from dense, lexical, "
            "hybrid (default: all three). Model mode is dense exact search.",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Report folder (default ./eval-reports/<dataset>-<split>-<time>/)."
        ),
    ] = None,
    precision: Annotated[
        Precision | None,
        typer.Option(
            "--precision",
            help="Embedder precision; default fp32 in model mode (comparable with "
            "sentence-transformers and across machines), RAGLOOP_PRECISION in service mode "
            "(the serving path); auto = bf16 on CPUs with it.",
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Texts per embedding batch.")
    ] = None,
    answers: Annotated[
        bool,
        typer.Option(
            "--answers",
            help="Score answers instead of retrieval: exact match, token F1 and citation "
            "precision of the configured generator over the ingested data dir.",
        ),
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="With --answers: ask a seeded sample of N questions."),
    ] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Score retrieval (nDCG, MRR, MAP, recall, precision, accuracy @1..100) and write JSON,
    Markdown and PNG plots; with --answers, score generated answers."""
    from ragloop.core.settings import load_settings
    from ragloop.eval.datasets import load_beir
    from ragloop.eval.report import EvalRun, default_out_dir, write_outputs
    from ragloop.eval.search import parse_dims

    with handled():
        if precision is None and mode == Mode.model and not answers:
            precision = Precision.fp32  # measure the model itself, not a fast path
        settings = load_settings(
            data_dir=data_dir, precision=precision.value if precision else None
        )
        wanted_dims = parse_dims(dims)
        _check_answer_options(answers, limit, model, wanted_dims)
        modes = _retrieval_modes(retrieval, mode, answers)
        data = load_beir(dataset, split)
        for warning in data.warnings:
            err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
        if answers:
            _answers(settings, data, limit, out_dir, as_json)
            return
        refs = list(dict.fromkeys(model or ["active"]))
        reports = _evaluate(settings, data, refs, mode, wanted_dims, batch_size, modes)
        run = EvalRun(
            dataset=data.name,
            dataset_path=str(data.path),
            split=split,
            mode=mode.value,
            reports=reports,
            warnings=data.warnings + [w for r in reports for w in r.info.get("warnings", [])],
        )
        target = out_dir or default_out_dir(data.name, split, run.created_at)
        files = write_outputs(run, target)
    if as_json:
        emit_json(run.to_dict() | {"precision": settings.precision, "files": files})
        return
    out.print(run.to_markdown(), highlight=False, markup=False)
    err.print(f"reports written to {target}", highlight=False)


def _retrieval_modes(value: str | None, mode: Mode, answers: bool) -> list[str]:
    """The ``--retrieval`` list: service mode only, default all three."""
    from ragloop.core.errors import InvalidInputError
    from ragloop.core.fusion import RETRIEVAL_MODES

    if value is None:
        return list(RETRIEVAL_MODES) if mode is Mode.service and not answers else []
    if mode is not Mode.service or answers:
        raise InvalidInputError(
            "--retrieval applies to service mode retrieval scores (--mode service, no --answers)"
        )
    modes = list(dict.fromkeys(m.strip() for m in value.split(",") if m.strip()))
    bad = [m for m in modes if m not in RETRIEVAL_MODES]
    if bad or not modes:
        raise InvalidInputError(
            f"--retrieval takes a comma-separated list of {', '.join(RETRIEVAL_MODES)}; "
            f"got {value!r}"
        )
    return modes


def _check_answer_options(
    answers: bool, limit: int | None, model: list[str] | None, dims: list[int]
) -> None:
    from ragloop.core.errors import InvalidInputError

    # Answers always go through the live service path (the data dir's active model).
    if answers and (model or dims):
        raise InvalidInputError(
            "--answers scores the data dir's active model with the configured generator "
            "(RAGLOOP_GENERATOR); --model and --dims do not apply"
        )
    if limit is not None and not answers:
        raise InvalidInputError("--limit applies to --answers only")


def _answers(
    settings: Settings, data: BeirDataset, limit: int | None, out_dir: Path | None, as_json: bool
) -> None:
    from ragloop.core.errors import InvalidInputError
    from ragloop.core.runtime import open_runtime
    from ragloop.eval.answer_mode import evaluate_answers, write_answer_outputs
    from ragloop.eval.evaluators import has_catalog
    from ragloop.eval.report import default_out_dir

    if not has_catalog(settings):
        raise InvalidInputError(
            f"--answers needs an ingested data dir; {settings.data_dir} has no catalog "
            f"(ragloop ingest {data.path / 'corpus.jsonl'} --data-dir DIR)"
        )
    runtime = open_runtime(settings)
    try:
        with progress_bar() as bar:
            run = evaluate_answers(runtime, data, limit=limit, progress=progress_callback(bar))
    finally:
        runtime.close()
    target = out_dir or default_out_dir(data.name, data.split, run.created_at)
    files = write_answer_outputs(run, target)
    for warning in run.warnings[len(data.warnings) :]:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    if as_json:
        emit_json(run.to_dict() | {"files": files})
        return
    out.print(run.to_markdown(), highlight=False, markup=False)
    err.print(f"reports written to {target}", highlight=False)


def _evaluate(
    settings: Settings,
    data: BeirDataset,
    refs: list[str],
    mode: Mode,
    dims: list[int],
    batch_size: int | None,
    retrieval: list[str] | None = None,
) -> list[RetrievalReport]:
    from ragloop.core.errors import InvalidInputError
    from ragloop.core.runtime import open_runtime
    from ragloop.eval.evaluators import (
        ModelModeEvaluator,
        ModelSource,
        RetrievalEvaluator,
        ServiceModeEvaluator,
        has_catalog,
    )

    options: dict[str, Any] = {
        "dims": dims or None,
        "batch_size": batch_size or settings.embed_batch_size,
    }
    source = ModelSource(settings)
    runtime = None
    try:
        with progress_bar() as bar:
            options["progress"] = progress_callback(bar)
            if mode is Mode.service:
                if not has_catalog(settings):
                    raise InvalidInputError(
                        f"service mode needs an ingested data dir; {settings.data_dir} has no "
                        f"catalog (ragloop ingest {data.path / 'corpus.jsonl'} --data-dir DIR)"
                    )
                runtime = open_runtime(settings)
                service = ServiceModeEvaluator(data, runtime, **options)
                return [
                    service.evaluate_mode(ref, cast("RetrievalMode", how))
                    for ref in refs
                    for how in retrieval or [settings.retrieval]
                ]
            evaluator: RetrievalEvaluator = ModelModeEvaluator(data, source.load, **options)
            return [evaluator.evaluate(ref) for ref in refs]
    finally:
        source.close()
        if runtime is not None:
            runtime.close()
