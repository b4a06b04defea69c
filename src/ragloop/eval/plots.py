"""PNG plots of an evaluation run (matplotlib, Agg backend chosen at draw time, not import)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragloop.eval.metrics import PRIMARY_METRIC

if TYPE_CHECKING:  # report.write_outputs imports this module to draw
    from ragloop.eval.report import EvalRun, RetrievalReport

#: Metrics in the per-model bar chart.
BAR_METRICS = ("ndcg@10", "mrr@10", "map@10", "recall@10", "recall@100")


def _pyplot() -> Any:
    import matplotlib

    # A headless backend, set here rather than at import so importing ragloop.eval never
    # changes the backend of a program (a notebook) that embeds it.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(run: EvalRun) -> str:
    return f"{run.dataset} ({run.split}), {run.mode} mode"


def _label(report: RetrievalReport) -> str:
    # "active" or a version id says little on its own; name the weights too.
    name = report.model
    if report.model_id and report.model_id != report.model:
        name += f" = {Path(report.model_id).name or report.model_id}"
    if report.retrieval:
        name += f" [{report.retrieval}]"
    return f"{name}, dim {report.top_dim}"


def plot_metrics_by_model(run: EvalRun, path: Path) -> Path:
    """Grouped bars: each summary metric, one bar per model (at its largest dimension)."""
    plt = _pyplot()
    n = max(len(run.reports), 1)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(7.0, 1.6 * len(BAR_METRICS) + 0.6 * n), 4.5), dpi=120)
    try:
        for i, report in enumerate(run.reports):
            xs = [j + (i - (n - 1) / 2) * width for j in range(len(BAR_METRICS))]
            values = [report.metrics.get(m, 0.0) for m in BAR_METRICS]
            bars = ax.bar(xs, values, width * 0.95, label=_label(report))
            ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=7, padding=2)
        ax.set_xticks(range(len(BAR_METRICS)), BAR_METRICS)
        ax.set_ylim(0, 1.08)
        ax.set_ylabel("score")
        ax.set_title(_title(run))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def plot_metric_by_dim(run: EvalRun, path: Path, metric: str = PRIMARY_METRIC) -> Path:
    """One line per model: ``metric`` at each evaluated (Matryoshka) dimension."""
    plt = _pyplot()
    dims = sorted(run.dims)
    fig, ax = plt.subplots(figsize=(7.0, 4.5), dpi=120)
    try:
        for report in run.reports:
            xs = [d for d in dims if d in report.by_dim]
            ys = [report.by_dim[d][metric] for d in xs]
            ax.plot(xs, ys, marker="o", label=_label(report).rsplit(", dim", 1)[0])
            for x, y in zip(xs, ys, strict=True):
                ax.annotate(
                    f"{y:.3f}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(0, 6),
                    fontsize=7,
                    ha="center",
                )
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(d) for d in dims])
        ax.minorticks_off()
        ax.set_xlabel("embedding dimension (Matryoshka truncation)")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} by dimension: {_title(run)}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def plot_by_retrieval(run: EvalRun, path: Path, metric: str = PRIMARY_METRIC) -> Path:
    """Bars of ``metric`` per retrieval mode (dense, lexical, hybrid), one group per model."""
    plt = _pyplot()
    modes = list(dict.fromkeys(str(r.retrieval) for r in run.reports if r.retrieval))
    models = list(dict.fromkeys(r.model for r in run.reports))
    value = {(r.model, str(r.retrieval)): r.by_dim[r.top_dim][metric] for r in run.reports}
    width = 0.8 / max(len(modes), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(models) + 2), 4.5), dpi=120)
    try:
        for i, mode in enumerate(modes):
            xs = [j + (i - (len(modes) - 1) / 2) * width for j in range(len(models))]
            values = [value.get((m, mode), 0.0) for m in models]
            bars = ax.bar(xs, values, width * 0.95, label=mode)
            ax.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=8, padding=2)
        ax.set_xticks(range(len(models)), models)
        ax.set_ylim(0, 1.08)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} by retrieval mode: {_title(run)}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def draw_all(run: EvalRun, out_dir: Path) -> dict[str, Path]:
    """Every plot that applies to ``run``: per model always, per dimension when several, per
    retrieval mode when several were scored."""
    files = {"plot_models": plot_metrics_by_model(run, out_dir / "metrics_by_model.png")}
    if len({r.retrieval for r in run.reports if r.retrieval}) > 1:
        files["plot_retrieval"] = plot_by_retrieval(run, out_dir / "ndcg_at_10_by_retrieval.png")
    if run.has_dim_sweep:
        files["plot_dims"] = plot_metric_by_dim(run, out_dir / "ndcg_at_10_by_dim.png")
    return files
