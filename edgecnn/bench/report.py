"""Bench reports: the terminal table (compact or --wide), Markdown, JSON and a PNG.

The compact table fits 100 columns; in a narrower terminal it hides the least needed columns
(and says which) rather than squeezing every cell to "…". BAC and p50 are never hidden.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgecnn.bench.latency import SPREAD_WARN_PCT
from edgecnn.fsutil import atomic_path, finite, write_bytes, write_json

SEP = 1               # spaces between terminal columns
MIN_ARTIFACT = 14     # an artifact name folds onto a second line rather than go below this


def _f(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, fmt)


def _lat(r: dict, key: str) -> Any:
    return (r.get("latency_ms") or {}).get(key)


def _p50(r: dict) -> str:
    return _f(_lat(r, "p50"), ".3f") + ("*" if r.get("noisy") else "")


def _precision(r: dict) -> str:
    return r["precision"] + ("+tta" if r.get("tta") else "")


def _delta(r: dict) -> str:
    return "–" if r.get("bac_drop") is None else f"{0.0 - r['bac_drop']:+.4f}"


def _gate(r: dict) -> str:
    if not r.get("passed_gate"):
        return "FAIL"
    return "ok" if r.get("gate_reason") == "ok" else "ok?"


@dataclass(frozen=True)
class Col:
    header: str
    cell: Callable[[dict], str]
    left: bool = False
    compact: bool = True
    hide_rank: int = 0    # hidden first when the terminal is narrow (higher = earlier); 0 = never
    optional: bool = False   # left out when no row has a value (field-level scores need a context stage)


COLUMNS = (
    Col("artifact", lambda r: r["name"], left=True),
    Col("runtime", lambda r: r["runtime"], left=True),
    Col("thr", lambda r: "def" if r["threads"] is None else str(r["threads"]), hide_rank=1),
    Col("precision", _precision, left=True, hide_rank=2),
    Col("MMAC", lambda r: _f(None if r.get("macs_per_tile") is None else r["macs_per_tile"] / 1e6, ".1f"), hide_rank=8,
        optional=True),
    Col("BAC", lambda r: _f(r.get("balanced_accuracy"), ".4f")),
    Col("Δ float", _delta, hide_rank=3),
    Col("field BAC", lambda r: _f((r.get("context") or {}).get("balanced_accuracy"), ".4f"), hide_rank=7, optional=True),
    Col("field AUC", lambda r: _f((r.get("context") or {}).get("roc_auc"), ".4f"), compact=False, optional=True),
    Col("acc", lambda r: _f(r.get("accuracy"), ".4f"), compact=False),
    Col("F1", lambda r: _f(r.get("f1"), ".4f"), compact=False),
    Col("AUC", lambda r: _f(r.get("roc_auc"), ".4f"), compact=False),
    Col("agree %", lambda r: _f(None if r.get("agreement") is None else 100 * r["agreement"], ".2f"), compact=False),
    Col("max |Δp|", lambda r: _f(r.get("max_abs_dp"), ".4f"), compact=False),
    Col("p50 ms", _p50),
    Col("±%", lambda r: _f(_lat(r, "p50_spread_pct"), ".1f"), compact=False),
    Col("p90 ms", lambda r: _f(_lat(r, "p90"), ".3f"), compact=False),
    Col("p99 ms", lambda r: _f(_lat(r, "p99"), ".3f"), hide_rank=5),
    Col("patches/s", lambda r: _f(r.get("throughput_per_s"), ",.0f"), hide_rank=4),
    Col("MB", lambda r: _f(r.get("peak_rss_mb"), ".0f"), hide_rank=6),
    Col("size MB", lambda r: _f(r["size_bytes"] / 2**20, ".2f"), compact=False),
    Col("load s", lambda r: _f(r.get("load_s"), ".2f"), compact=False),
    Col("floor", lambda r: _f((r.get("gate") or {}).get("floor"), ".4f"), compact=False),
    Col("gate", _gate, left=True),
)


def columns(wide: bool, rows: list[dict] | None = None) -> list[Col]:
    return [c for c in COLUMNS if (wide or c.compact)
            and not (c.optional and rows is not None and all(c.cell(r) == "–" for r in rows))]


def _widths(cols: list[Col], rows: list[dict]) -> list[int]:
    return [max([len(c.header)] + [len(c.cell(r)) for r in rows]) for c in cols]


def fit_columns(rows: list[dict], width: int | None, wide: bool = False) -> tuple[list[Col], list[int], list[str]]:
    """(columns, their widths, hidden headers) so the table fits ``width`` (None: no limit).

    Field-level BAC, memory, p99 and throughput go first (in that order); then long artifact names fold onto a
    second line (down to MIN_ARTIFACT); then Δ float, precision and threads go. The wide table
    hides nothing: it is printed at its full width.
    """
    cols = columns(wide, rows)
    if width is None or wide:
        return cols, _widths(cols, rows), []
    hidden: list[str] = []
    for fold_first in (False, True):
        while True:
            w = _widths(cols, rows)
            over = sum(w) + SEP * (len(cols) - 1) - width
            if over <= 0:
                return cols, w, hidden
            if fold_first and w[0] - over >= MIN_ARTIFACT:
                w[0] -= over
                return cols, w, hidden
            droppable = [c for c in cols if c.hide_rank >= (1 if fold_first else 4)]
            if not droppable:
                break
            victim = max(droppable, key=lambda c: c.hide_rank)
            hidden.append(victim.header)
            cols = [c for c in cols if c is not victim]
    w[0] = max(MIN_ARTIFACT, w[0] - over)
    return cols, w, hidden


def table_width(result: dict[str, Any], wide: bool = False) -> int:
    cols, w, _ = fit_columns(result["rows"], None, wide)
    return sum(w) + SEP * (len(cols) - 1)


def rich_table(result: dict[str, Any], width: int | None = None, wide: bool = False):
    """(rich Table, notes to print under it) for a terminal ``width`` columns wide."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    rows = result["rows"]
    cols, w, hidden = fit_columns(rows, width, wide)
    d = result["data"]
    t = Table(title=f"edgecnn bench — {d['n_patches']:,} patches ({d['n_positive']:,} IDC)", box=box.SIMPLE_HEAD,
              show_edge=False, pad_edge=False, padding=(0, 0), collapse_padding=True, title_justify="left")
    for c, cw in zip(cols, w):
        t.add_column(c.header, justify="left" if c.left else "right", width=cw, min_width=cw, max_width=cw,
                     no_wrap=c.header != "artifact", overflow="fold")
    for r in rows:
        cells = [escape(c.cell(r)) for c in cols]
        if cols[-1].header == "gate":
            cells[-1] = {"FAIL": "[red]FAIL[/]", "ok": "[green]ok[/]"}.get(cells[-1], "[yellow]ok?[/]")
        t.add_row(*cells)
    return t, table_notes(result, hidden)


def table_notes(result: dict[str, Any], hidden: list[str]) -> list[str]:
    rows, cfg = result["rows"], result["config"]
    notes = [f"p50/p99: batch-1 latency; p50 is the median of {cfg.get('rounds', 1)} interleaved round medians."
             + " Δ float: BAC minus the float reference's. MB: peak RSS of the row's own process."]
    if any(r.get("noisy") for r in rows):
        notes.append(f"* round-to-round p50 spread above ±{SPREAD_WARN_PCT:g} % (see warnings).")
    if any(r.get("passed_gate") and r.get("gate_reason") != "ok" for r in rows):
        notes.append("ok?: not gated (no recorded score, no float reference, no --min-bac).")
    if any(r.get("precision") == "int8-trt" and r.get("runtime") == "onnxruntime" for r in rows):
        notes.append("int8-trt: a TensorRT input file (symmetric Q/DQ where TensorRT fuses them); ONNX Runtime's CPU "
                     "runs it slowly, so time int8-ptq for ORT and build an engine from int8-trt (docs/tensorrt.md).")
    if any((r.get("context") or {}).get("balanced_accuracy") is not None for r in rows):
        notes.append("field BAC/AUC: with neighbouring tiles, through the artifact's context stage (docs/context.md).")
    if any(r.get("macs_per_tile") for r in rows):
        notes.append("MMAC: millions of multiply-adds per tile (the manifest's compute; the same in every format).")
    if hidden:
        notes.append(f"Hidden to fit this terminal: {', '.join(hidden)} (widen it, or --wide, --md, --json).")
    return notes


def print_table(result: dict[str, Any], console, wide: bool = False) -> None:
    """Print the table on ``console``; the wide table is never cut to the terminal (it wraps)."""
    width = console.width
    table, notes = rich_table(result, width, wide)
    try:
        if wide:
            console.width = max(width, table_width(result, True))
        console.print(table)
    finally:
        console.width = width
    for n in notes:
        console.print(n, style="dim", highlight=False)


def report_json(result: dict[str, Any]) -> dict[str, Any]:
    """Strict JSON: NaN (e.g. ROC AUC on a one-class subset) becomes null."""
    return finite(result)


def write_report_json(result: dict[str, Any], path: str | Path) -> Path:
    return write_json(path, report_json(result))


def markdown(result: dict[str, Any]) -> str:
    m, d, cfg = result["machine"], result["data"], result["config"]
    cols = columns(True, result["rows"])
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    gate = (f"recorded test score − {cfg.get('tolerance')} (else the float reference's), drop vs float <= "
            f"{cfg.get('max_drop')}" + (f", balanced accuracy >= {cfg['min_bac']}" if cfg.get("min_bac") is not None else ""))
    lines = [
        "# edgecnn bench", "",
        f"- Machine: {m['cpu']} ({m['arch']}), {m['usable_cores']} usable cores, ISA: {', '.join(m['isa']) or 'n/a'}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}",
        f"- Data: {d['n_patches']} patches ({d['n_positive']} IDC) from {d['source']}"
        + (f", split {d['split']}" if d.get("split") else ""),
        f"- Latency: {cfg.get('latency')}; {cfg.get('rounds')} rounds"
        + ("; rows with fewer threads than CPUs pinned to that many CPUs" if cfg.get("pin") else "")
        + f"; throughput at batch {max(cfg['batches'])}; "
        f"RSS: {cfg['rss_method']}",
        f"- Gate: {gate} — {'PASSED' if result['passed'] else 'FAILED'}", "",
        "| " + " | ".join(esc(c.header) for c in cols) + " |",
        "|" + "|".join("---" if c.left else "---:" for c in cols) + "|",
    ]
    lines += ["| " + " | ".join(esc(c.cell(r)) for c in cols) + " |" for r in result["rows"]]
    for title, items in (("Warnings", result.get("warnings") or []), ("Gate failures", result["failures"]),
                         ("Skipped", [f"{Path(s['artifact']).name} on {s['runtime']}: {s['reason']}"
                                      for s in result["skipped"]])):
        if items:
            lines += ["", f"## {title}", ""] + [f"- {esc(i)}" for i in items]
    return "\n".join(lines) + "\n"


def write_markdown(result: dict[str, Any], path: str | Path) -> Path:
    return write_bytes(path, markdown(result).encode())


def plot_label(r: dict[str, Any]) -> str:
    t = "" if r["threads"] is None else f" t{r['threads']}"
    return f"{r['name']}{' +tta' if r.get('tta') else ''} · {r['runtime']}{t}"


def write_plot(result: dict[str, Any], path: str | Path) -> Path:
    """Latency p50 (log x) against balanced accuracy. Points carry numbers; the key beside the
    axes names them, so 30 rows stay readable. Failed rows are red crosses (in the legend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if _lat(r, "p50") and r.get("balanced_accuracy") is not None]
    rows.sort(key=lambda r: r["latency_ms"]["p50"])
    fig = plt.figure(figsize=(10, max(5.0, 1.6 + 0.22 * len(rows))), dpi=120)
    ax = fig.add_axes((0.08, 0.1, 0.52, 0.8))
    handles = _scatter(ax, rows, result)
    fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.63, 0.1), fontsize=7, title="marker",
               title_fontsize=7)
    _key(fig, rows)
    ax.set_title(f"edgecnn bench — {result['machine']['cpu']}\n{result['data']['n_patches']:,} patches, "
                 f"{result['config'].get('rounds', 1)} rounds", fontsize=9)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def _scatter(ax, rows: list[dict], result: dict) -> list:
    import matplotlib.ticker as ticker

    runtimes = sorted({r["runtime"] for r in rows})
    colour = {rt: f"C{i % 10}" for i, rt in enumerate(runtimes)}
    for r in rows:
        failed = not r.get("passed_gate")
        ax.scatter([r["latency_ms"]["p50"]], [r["balanced_accuracy"]], marker="x" if failed else "o",
                   s=60 if failed else 30, color="red" if failed else colour[r["runtime"]], zorder=3)
    for (x, y), numbers in _label_groups(rows):
        ax.annotate(",".join(numbers), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    handles = [ax.scatter([], [], marker="o", s=30, color=colour[rt], label=rt) for rt in runtimes]
    handles.append(ax.scatter([], [], marker="x", s=60, color="red", label="failed the gate"))
    front = pareto_front(rows)
    if len(front) > 1:
        handles.append(ax.plot([r["latency_ms"]["p50"] for r in front], [r["balanced_accuracy"] for r in front],
                               color="black", linewidth=0.8, linestyle=":", drawstyle="steps-post", zorder=2,
                               label="Pareto front")[0])
    if result["config"].get("min_bac") is not None:
        handles.append(ax.axhline(result["config"]["min_bac"], color="grey", linestyle="--", linewidth=0.8,
                                  label="--min-bac"))
    if rows and all(r["latency_ms"]["p50"] > 0 for r in rows):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("latency p50 at batch 1 (ms, log scale)")
    ax.set_ylabel("balanced accuracy")
    ax.grid(True, alpha=0.3)
    return handles


def pareto_front(rows: list[dict]) -> list[dict]:
    """Rows that passed their gate and that no other such row beats on both latency and balanced
    accuracy, fastest first: the artifacts worth choosing between."""
    ok = sorted((r for r in rows if r.get("passed_gate") and _lat(r, "p50") and r.get("balanced_accuracy") is not None),
                key=lambda r: (r["latency_ms"]["p50"], -r["balanced_accuracy"]))
    front: list[dict] = []
    for r in ok:
        if not front or r["balanced_accuracy"] > front[-1]["balanced_accuracy"]:
            front.append(r)
    return front


def _label_groups(rows: list[dict]) -> list[tuple[tuple[float, float], list[str]]]:
    """Row numbers of points that would print on top of each other, as one label ("5,6")."""
    ys = [r["balanced_accuracy"] for r in rows]
    y_near = 0.03 * ((max(ys) - min(ys)) if ys and max(ys) > min(ys) else 1.0)
    groups: list[tuple[tuple[float, float], list[str]]] = []
    for i, r in enumerate(rows, 1):
        x, y = r["latency_ms"]["p50"], r["balanced_accuracy"]
        for (gx, gy), numbers in groups:
            if abs(math.log(max(x, 1e-9) / max(gx, 1e-9))) < 0.12 and abs(y - gy) < y_near:
                numbers.append(str(i))
                break
        else:
            groups.append(((x, y), [str(i)]))
    return groups


def _key(fig, rows: list[dict]) -> None:
    """The numbered list of rows, right of the axes; as many text columns as the height needs."""
    per_col = max(1, int((fig.get_figheight() * 72 - 190) / 10))  # 190 pt: margins and the legend below
    n_cols = -(-len(rows) // per_col) if rows else 1
    width = 0.37 / n_cols
    for i, r in enumerate(rows):
        col, line = divmod(i, per_col)
        fail = "" if r.get("passed_gate") else "  ✗"
        fig.text(0.63 + col * width, 0.9 - line * 10 / (fig.get_figheight() * 72), f"{i + 1:>2}  {plot_label(r)}{fail}",
                 fontsize=6.5 if n_cols == 1 else 5.5, family="monospace", va="top",
                 color="red" if fail else "black")
