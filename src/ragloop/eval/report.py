"""Evaluation reports: one per model, gathered into a comparison written as JSON and Markdown.

Plots are drawn by ``plots``; ``write_outputs`` puts all three kinds of file into one folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragloop.eval.metrics import PRIMARY_METRIC

#: Columns of the summary table, in order.
SUMMARY = ("ndcg@10", "mrr@10", "map@10", "recall@10", "recall@100", "precision@10", "accuracy@1")


@dataclass
class RetrievalReport:
    """One model's retrieval quality on one split, at each evaluated dimension."""

    model: str
    model_id: str
    mode: str
    dataset: str
    split: str
    n_queries: int
    n_documents: int
    dimension: int
    by_dim: dict[int, dict[str, float]]
    seconds: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    primary_metric: str = PRIMARY_METRIC
    #: Service mode: dense, lexical or hybrid retrieval; None in model mode (dense, exact).
    retrieval: str | None = None

    @property
    def top_dim(self) -> int:
        """The largest evaluated dimension (the model's own when it was evaluated)."""
        return max(self.by_dim)

    @property
    def metrics(self) -> dict[str, float]:
        """Metrics at the largest evaluated dimension."""
        return self.by_dim[self.top_dim]

    @property
    def primary(self) -> float:
        """The primary metric at the largest evaluated dimension."""
        return self.metrics[self.primary_metric]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; dimension keys become strings."""
        return {
            "model": self.model,
            "model_id": self.model_id,
            "mode": self.mode,
            "retrieval": self.retrieval,
            "dimension": self.dimension,
            "primary": {"metric": self.primary_metric, "value": self.primary, "dim": self.top_dim},
            "metrics": self.metrics,
            "by_dim": {str(d): m for d, m in sorted(self.by_dim.items(), reverse=True)},
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "info": self.info,
        }


@dataclass
class EvalRun:
    """Every model evaluated in one command, on one dataset split, in one mode."""

    dataset: str
    dataset_path: str
    split: str
    mode: str
    reports: list[RetrievalReport]
    warnings: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    greater_is_better: bool = True

    @property
    def dims(self) -> list[int]:
        """Every dimension any model was evaluated at, largest first."""
        return sorted({d for r in self.reports for d in r.by_dim}, reverse=True)

    @property
    def has_dim_sweep(self) -> bool:
        """Whether some model was scored at more than one dimension (``--dims``)."""
        return any(len(r.by_dim) > 1 for r in self.reports)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report."""
        first = self.reports[0] if self.reports else None
        return {
            "dataset": self.dataset,
            "dataset_path": self.dataset_path,
            "split": self.split,
            "mode": self.mode,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.created_at)),
            "primary_metric": PRIMARY_METRIC,
            "greater_is_better": self.greater_is_better,
            "n_queries": first.n_queries if first else 0,
            "n_documents": first.n_documents if first else 0,
            "warnings": self.warnings,
            "models": [r.to_dict() for r in self.reports],
        }

    def to_markdown(self) -> str:
        """A summary table (one row per model and dimension) and full tables per model."""
        # A dim column when there is a sweep, or when models of different widths sit side by side.
        multi_dim = self.has_dim_sweep or len(self.dims) > 1
        lines = [
            f"# {self.dataset} ({self.split}), {self.mode} mode",
            "",
            f"{self.reports[0].n_queries if self.reports else 0} queries, "
            f"{self.reports[0].n_documents if self.reports else 0} documents.",
            "",
        ]
        head = ["model"] + (["dim"] if multi_dim else []) + list(SUMMARY)
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.reports:
            for dim in sorted(r.by_dim, reverse=True):
                cells = [_name(r)] + ([str(dim)] if multi_dim else [])
                cells += [f"{r.by_dim[dim].get(m, float('nan')):.4f}" for m in SUMMARY]
                lines.append("| " + " | ".join(cells) + " |")
        lines += _retrieval_table(self.reports)
        for r in self.reports:
            how = f", {r.retrieval} retrieval" if r.retrieval else ""
            lines += ["", f"## {r.model} ({r.model_id}), dim {r.top_dim}{how}", ""]
            lines += _full_table(r.metrics)
        if self.warnings:
            lines += ["", "## Warnings", ""] + [f"- {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"


def _name(report: RetrievalReport) -> str:
    # "active" or a version id alone does not say which weights were measured.
    name = report.model
    if report.model_id not in ("", report.model):
        name += f" ({Path(report.model_id).name or report.model_id})"
    return f"{name} [{report.retrieval}]" if report.retrieval else name


def _retrieval_table(reports: list[RetrievalReport]) -> list[str]:
    """The primary metric per model (rows) and retrieval mode (columns), when several modes
    were scored: dense, lexical and hybrid side by side."""
    modes = list(dict.fromkeys(r.retrieval for r in reports if r.retrieval))
    if len(modes) < 2:
        return []
    models = list(dict.fromkeys((r.model, r.model_id) for r in reports))
    value = {(r.model, r.model_id, r.retrieval): r.primary for r in reports}
    lines = ["", f"## {PRIMARY_METRIC} by retrieval mode", ""]
    lines += ["| model | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for model, model_id in models:
        cells = [value.get((model, model_id, m)) for m in modes]
        label = model if model_id in ("", model) else f"{model} ({Path(model_id).name})"
        lines.append(
            f"| {label} | " + " | ".join("" if v is None else f"{v:.4f}" for v in cells) + " |"
        )
    return lines


def _full_table(metrics: dict[str, float]) -> list[str]:
    names = list(dict.fromkeys(n.split("@")[0] for n in metrics))
    ks = sorted({int(n.split("@")[1]) for n in metrics})
    rows = ["| metric | " + " | ".join(f"@{k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for name in names:
        vals = [metrics.get(f"{name}@{k}") for k in ks]
        rows.append(
            f"| {name} | " + " | ".join("" if v is None else f"{v:.4f}" for v in vals) + " |"
        )
    return rows


def default_out_dir(dataset: str, split: str, now: float | None = None) -> Path:
    """``./eval-reports/<dataset>-<split>-<timestamp>/``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now or time.time()))
    return Path("eval-reports") / f"{dataset}-{split}-{stamp}"


def write_outputs(run: EvalRun, out_dir: Path) -> dict[str, str]:
    """Write ``report.json``, ``report.md`` and the PNG plots; returns their paths by kind."""
    from ragloop.eval import plots

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"markdown": out_dir / "report.md", "json": out_dir / "report.json"}
    files["markdown"].write_text(run.to_markdown(), encoding="utf-8")
    files |= plots.draw_all(run, out_dir)
    payload = run.to_dict() | {"files": {k: str(v) for k, v in files.items()}}
    files["json"].write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return {k: str(v) for k, v in files.items()}
