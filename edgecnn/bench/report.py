"""Bench reports: rich table (screen), JSON, Markdown, PNG (latency vs balanced accuracy)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgecnn.fsutil import atomic_path, write_bytes, write_json

COLUMNS = ("artifact", "runtime", "thr", "precision", "BAC", "acc", "F1", "AUC", "agree %", "max |Δp|",
           "p50 ms", "p99 ms", "patches/s", "RSS MB", "size KB", "load s", "gate")


def _f(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, fmt)


def row_cells(r: dict[str, Any]) -> list[str]:
    lat = r.get("latency_ms") or {}
    thr = r.get("throughput_per_s")
    prec = r["precision"] + (f" ({r['inference_precision']})" if r.get("inference_precision") else "")
    return [
        r["name"], r["runtime"], "default" if r["threads"] is None else str(r["threads"]), prec,
        _f(r.get("balanced_accuracy"), ".4f"), _f(r.get("accuracy"), ".4f"), _f(r.get("f1"), ".4f"),
        _f(r.get("roc_auc"), ".4f"),
        _f(None if r.get("agreement") is None else 100 * r["agreement"], ".2f"), _f(r.get("max_abs_dp"), ".4f"),
        _f(lat.get("p50"), ".3f"), _f(lat.get("p99"), ".3f"),
        (_f(thr, ",.0f") + f" @{r['batch']}") if thr else "–",
        _f(r.get("peak_rss_mb"), ".0f"), _f(r["size_bytes"] / 1024, ",.0f"), _f(r.get("load_s"), ".3f"),
        "pass" if r.get("passed_gate") else "FAIL",
    ]


def _sanitize(o: Any) -> Any:
    # Strict JSON has no NaN (e.g. ROC AUC on a one-class subset): write null.
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return None
    if isinstance(o, dict):
        return {k: _sanitize(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_sanitize(v) for v in o]
    return o


def write_report_json(result: dict[str, Any], path: str | Path) -> Path:
    return write_json(path, _sanitize(result))


def markdown(result: dict[str, Any]) -> str:
    m, d = result["machine"], result["data"]
    lines = [
        "# edgecnn bench",
        "",
        f"- Machine: {m['cpu']} ({m['arch']}), {m['usable_cores']} usable cores, ISA: {', '.join(m['isa']) or 'n/a'}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}",
        f"- Data: {d['n_patches']} patches ({d['n_positive']} IDC) from {d['source']}"
        + (f", split {d['split']}" if d.get("split") else ""),
        f"- Latency: batch 1, end to end from uint8 pixels; throughput at the largest batch; "
        f"RSS: {result['config']['rss_method']}",
        f"- Gate: balanced accuracy >= {result['config']['min_bac']}, drop vs float <= {result['config']['max_drop']}"
        f" — {'PASSED' if result['passed'] else 'FAILED'}",
        "",
        "| " + " | ".join(c.replace("|", "\\|") for c in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for r in result["rows"]:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row_cells(r)) + " |")
    if result["failures"]:
        lines += ["", "## Gate failures", ""] + [f"- {f}" for f in result["failures"]]
    if result["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- {Path(s['artifact']).name} on {s['runtime']}: {s['reason']}"
                                           for s in result["skipped"]]
    return "\n".join(lines) + "\n"


def write_markdown(result: dict[str, Any], path: str | Path) -> Path:
    return write_bytes(path, markdown(result).encode())


def write_plot(result: dict[str, Any], path: str | Path) -> Path:
    """Latency p50 (log x) against balanced accuracy, one labelled point per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = [r for r in result["rows"] if r.get("latency_ms") and r.get("balanced_accuracy") is not None]
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for i, r in enumerate(sorted(rows, key=lambda r: r["latency_ms"]["p50"])):
        x, y = r["latency_ms"]["p50"], r["balanced_accuracy"]
        ax.scatter([x], [y], marker="o" if r.get("passed_gate") else "x", s=40)
        t = "" if r["threads"] is None else f" t{r['threads']}"
        # Staggered offsets keep labels of rows with equal accuracy (same model, other runtime) apart.
        ax.annotate(f"{r['format']}-{r['precision']}/{r['runtime']}{t}", (x, y), textcoords="offset points",
                    xytext=(4, 4 + 9 * (i % 5)), fontsize=7,
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "grey"} if i % 5 else None)
    ax.axhline(result["config"]["min_bac"], color="grey", linestyle="--", linewidth=0.8, label="--min-bac")
    if rows and all(r["latency_ms"]["p50"] > 0 for r in rows):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("latency p50 at batch 1 (ms)")
    ax.set_ylabel("balanced accuracy")
    ax.set_title(f"edgecnn bench — {result['machine']['cpu']}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def rich_table(result: dict[str, Any]):
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"edgecnn bench — {result['data']['n_patches']} patches, {result['machine']['cpu']}")
    for c in COLUMNS:
        t.add_column(c, justify="left" if c in ("artifact", "runtime", "precision") else "right", no_wrap=c == "artifact")
    for r in result["rows"]:
        cells = [escape(c) for c in row_cells(r)]
        cells[-1] = "[green]pass[/]" if r.get("passed_gate") else "[red]FAIL[/]"
        t.add_row(*cells)
    return t
