"""SVG plots of an audit's ``results.json`` and a comparison's ``compare.json``.

Every public function returns an SVG **string** ready to be inlined in an HTML5 page (no XML
prolog, no doctype, no external reference; a ``<title>`` plus ``role="img"`` and
``aria-label`` carry the caption) or written to a file with :func:`svg_to_file`.

* Deterministic: the same input gives byte-identical SVG (fixed ``svg.hashsalt``, no date or
  creator metadata, fixed figure sizes, no randomness).
* Small: text stays text (``svg.fonttype = "none"``), the ``<metadata>`` block is dropped.
* Light and dark pages: the backgrounds are transparent and everything matplotlib draws in
  black (text, spines, ticks, grid, the frontier line) is rewritten to ``currentColor``, so it
  follows the page's text colour. Data use :data:`PALETTE`, Okabe–Ito colours of middle
  luminance with a contrast of at least 3:1 against both white and near-black (``#121212``).
* Log axes never see a non-positive value: such points are dropped and the title says how
  many (``"2 points ≤ 0 not shown"``); a plot whose values are all ≤ 0 falls back to a linear
  axis. Non-finite values (``null`` in the JSON) are dropped silently.

No pyplot: figures are :class:`matplotlib.figure.Figure` objects on an explicit Agg canvas,
built inside :func:`matplotlib.rc_context`, so no global state leaks.
"""

from __future__ import annotations

import html
import io
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ...bounds.quantities import Quantity
from ..observables import KEY, OBSERVABLES

__all__ = ["PALETTE", "bound_plot", "probe_plots", "sharpness_plot", "frontier_plot",
           "svg_to_file", "MAX_PROBE_PLOTS"]

# Okabe–Ito blue, vermillion, bluish green, reddish purple, plus a neutral grey: every one has
# a contrast ratio ≥ 3:1 against white and against #121212 (tests/auditor/test_plots.py checks).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#7F7F7F")
FOREGROUND = "#000000"            # rewritten to currentColor after saving
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
FIGSIZE = (7.2, 3.4)              # inches; 518 × 245 pt
MAX_PROBE_PLOTS = 8
XML_PROLOG = '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'

_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "approx-audit",
    "svg.image_inline": True,
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "text.color": FOREGROUND,
    "axes.labelcolor": FOREGROUND,
    "axes.edgecolor": FOREGROUND,
    "axes.titlecolor": FOREGROUND,
    "xtick.color": FOREGROUND,
    "ytick.color": FOREGROUND,
    "grid.color": FOREGROUND,
    "grid.alpha": 0.12,
    "grid.linewidth": 0.6,
    "axes.facecolor": "none",
    "figure.facecolor": "none",
    "savefig.facecolor": "none",
    "savefig.edgecolor": "none",
    "savefig.transparent": True,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 4.0,
    "path.simplify": True,
    "path.simplify_threshold": 0.2,
    "axes.unicode_minus": True,
    "text.usetex": False,
}

_COLORS = {"observed": PALETTE[0], "predicted": PALETTE[1]}


# ------------------------------------------------------------------ small helpers

# beyond this a value is left out of the plots: a diverging run's 1e305 would overflow the
# log axis' tick arithmetic (matplotlib: "cannot convert float infinity to integer") and
# flatten every other point; the report's text says where and how the run diverged
PLOT_MAX = 1e100


def _num(x: Any) -> float | None:
    """A finite float of magnitude at most :data:`PLOT_MAX`, or None (``null``, NaN, ±inf,
    huge values, text, bools)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and abs(v) <= PLOT_MAX else None


def _pairs(xs: Sequence[Any] | None, ys: Sequence[Any] | None) -> list[tuple[float, float]]:
    """The (x, y) pairs where both are finite."""
    out = []
    for x, y in zip(xs or [], ys or []):
        fx, fy = _num(x), _num(y)
        if fx is not None and fy is not None:
            out.append((fx, fy))
    return out


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _math_ok(tex: str) -> bool:
    """Whether matplotlib's mathtext can draw ``$tex$`` (it knows a subset of LaTeX)."""
    from matplotlib.mathtext import MathTextParser
    try:
        MathTextParser("path").parse(f"${tex}$", dpi=72)
    except Exception:  # noqa: BLE001 - any parse failure means "use plain text"
        return False
    return True


def _dropped_note(n: int) -> str:
    return "" if n == 0 else f"{n} point{'s' if n != 1 else ''} ≤ 0 not shown (log axis)"


class _LogFilter:
    """Decides one axis's scale and counts the points a log scale drops."""

    def __init__(self, values: Iterable[float]):
        vals = list(values)
        self.log = any(v > 0 for v in vals)
        self.dropped = 0

    def keep(self, pts: list[tuple[float, float]], axis: int = 1) -> list[tuple[float, float]]:
        if not self.log:
            return pts
        kept = [p for p in pts if p[axis] > 0]
        self.dropped += len(pts) - len(kept)
        return kept


def _new_figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=FIGSIZE, dpi=72)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, which="major")
    return fig, ax


_PROLOG_RE = re.compile(r"\A.*?(?=<svg[\s>])", re.S)
_METADATA_RE = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_STYLE_BLACK_RE = re.compile(r"\b(fill|stroke)(\s*:\s*)(?:#000000|#000|black)\b", re.I)
_ATTR_BLACK_RE = re.compile(r'\b(fill|stroke)="(?:#000000|#000|black)"', re.I)
_ROOT_RE = re.compile(r"<svg\b([^>]*)>")


def _finish(fig: Figure, caption: str) -> str:
    """Save ``fig`` as SVG and post-process it (see the module docstring)."""
    buf = io.StringIO()
    with warnings.catch_warnings():     # matplotlib's overflow warnings on extreme axes
        warnings.simplefilter("ignore", RuntimeWarning)
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None},
                    facecolor="none", edgecolor="none")
    svg = buf.getvalue()
    svg = _PROLOG_RE.sub("", svg, count=1)
    svg = _METADATA_RE.sub("", svg)
    svg = _STYLE_BLACK_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}currentColor", svg)
    svg = _ATTR_BLACK_RE.sub(lambda m: f'{m.group(1)}="currentColor"', svg)
    label = html.escape(caption, quote=True)

    def root(m: re.Match[str]) -> str:
        # fill="currentColor": matplotlib leaves black fills (text, markers) to the default,
        # which is black; inherited from the root they follow the page's colour instead.
        return (f'<svg{m.group(1)} role="img" aria-label="{label}" fill="currentColor" '
                f'style="max-width: 100%; height: auto">\n<title>{label}</title>')

    svg = _ROOT_RE.sub(root, svg, count=1)
    return svg.strip() + "\n"


def svg_to_file(svg: str, path: str | Path) -> Path:
    """Write ``svg`` (one of this module's strings) as a standalone ``.svg`` file, with the
    XML prolog put back; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    body = svg if svg.lstrip().startswith("<?xml") else XML_PROLOG + svg.lstrip()
    p.write_text(body, encoding="utf-8")
    return p


def _line(ax: Any, pts: list[tuple[float, float]], gid: str, label: str, color: str,
          style: str = "-", marker: str | None = None, lw: float | None = None,
          zorder: float = 2.0) -> None:
    if not pts:
        return
    xs, ys = zip(*pts)
    if marker is None and len(pts) <= 30:
        marker = "o"
    (ln,) = ax.plot(xs, ys, linestyle=style, color=color, label=label, marker=marker,
                    linewidth=lw, zorder=zorder)
    ln.set_gid(gid)


def _legend(ax: Any) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        # outside the axes, on the right: a frameless legend inside would hide data
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                  handlelength=2.2)


def _set_title(ax: Any, title: str, notes: Sequence[str]) -> None:
    notes = [n for n in notes if n]
    ax.set_title(title + ("\n" + "; ".join(notes) if notes else ""))


# ------------------------------------------------------------------ bound plot

def bound_plot(verdict: Mapping[str, Any]) -> str | None:
    """Predicted bound and observed quantity against K on log–log axes.

    The observed mean is a solid line, with a shaded ±margin band when the series has one
    (several seeds), and the maximum over seeds dotted when given; the bound is dashed.
    Non-positive values are dropped from the log axes and counted in the title. None when the
    verdict has no series (not_applicable, error) or no finite point.
    """
    s = verdict.get("series")
    if not s or not s.get("k"):
        return None
    vid = str(verdict.get("id", "bound"))
    status = str(verdict.get("verdict", ""))
    ks = s.get("k") or []
    obs = _pairs(ks, s.get("observed"))
    pred = _pairs(ks, s.get("predicted"))
    omax = _pairs(ks, s.get("observed_max")) if s.get("observed_max") else []
    band: list[tuple[float, float, float]] = []
    if s.get("margin"):
        for k, m, mg in zip(ks, s.get("observed") or [], s.get("margin") or []):
            fk, fm, fg = _num(k), _num(m), _num(mg)
            if fk is not None and fm is not None and fg is not None:
                band.append((fk, fm - abs(fg), fm + abs(fg)))
    if not obs and not pred:
        return None
    quantity = str(verdict.get("quantity") or "quantity")
    tex = verdict.get("quantity_latex")
    ylabel = f"${tex}$" if tex and _math_ok(str(tex)) else quantity
    expectation = bool(verdict.get("expectation"))
    over = str(s.get("over") or "seeds")
    caption = (f"Bound {vid} ({status}): observed {quantity} and the predicted bound "
               "against K, log–log")
    with matplotlib.rc_context(_RC):
        fig, ax = _new_figure()
        xf = _LogFilter(k for k, _ in obs + pred)
        yf = _LogFilter([y for _, y in obs + pred + omax])
        obs_k = yf.keep(xf.keep(obs, 0))
        pred_k = yf.keep(xf.keep(pred, 0))
        omax_k = yf.keep(xf.keep(omax, 0))
        if band:
            bk = [(k, lo, hi) for k, lo, hi in band if (not xf.log or k > 0)]
            if yf.log:
                floor = min((y for _, y in obs_k + pred_k), default=1.0) * 1e-3
                bk = [(k, max(lo, floor), hi) for k, lo, hi in bk if hi > 0]
            if bk:
                coll = ax.fill_between([b[0] for b in bk], [b[1] for b in bk],
                                       [b[2] for b in bk], color=_COLORS["observed"], alpha=0.22,
                                       linewidth=0, label="±95 % margin", zorder=1)
                coll.set_gid("series-margin")
        _line(ax, pred_k, "series-predicted", "predicted bound", _COLORS["predicted"], "--",
              marker="" if len(pred_k) > 30 else "s")
        _line(ax, obs_k, "series-observed",
              f"observed (mean over {over})" if expectation or band else "observed",
              _COLORS["observed"], "-")
        _line(ax, omax_k, "series-observed-max", f"observed max over {over}", PALETTE[2], ":",
              lw=1.2)
        if xf.log:
            ax.set_xscale("log")
        if yf.log:
            ax.set_yscale("log")
        ax.set_xlabel("K (iterations)")
        ax.set_ylabel(ylabel)
        _set_title(ax, f"{vid} — {status}", [_dropped_note(xf.dropped + yf.dropped)])
        _legend(ax)
        fig.tight_layout()
        return _finish(fig, caption)


# ------------------------------------------------------------------ probes

def _probe_series(results: Mapping[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """Every probe series by key (the first probe that has the key wins)."""
    out: dict[str, list[tuple[float, float]]] = {}
    for p in results.get("probes") or []:
        for key, ser in (p.get("series") or {}).items():
            if key in out or not isinstance(ser, Mapping):
                continue
            pts = _pairs(ser.get("k"), ser.get("value"))
            if pts:
                out[key] = pts
    return out


def _constant_lines(results: Mapping[str, Any], name: str, symbol: str,
                    square: bool = False) -> tuple[list[tuple[float, str]], str]:
    """Horizontal lines for what the verdict engine knew of constant ``name``: ``[(value,
    label)]`` and a note when nothing usable is known."""
    c = (results.get("constants") or {}).get(name)
    if not isinstance(c, Mapping):
        return [], ""
    lo, hi = _num(c.get("lo")), _num(c.get("hi"))
    if square:
        lo = None if lo is None else lo * lo
        hi = None if hi is None else hi * hi
        symbol = f"{symbol}²"
    kinds = {e.get("kind") for e in c.get("estimates") or [] if isinstance(e, Mapping)}
    tag = "asserted" if c.get("asserted") else ("exact" if "exact" in kinds else "estimate")
    lines: list[tuple[float, str]] = []
    if lo is not None and hi is not None and lo == hi:
        lines.append((lo, f"{symbol} = {_fmt(lo)} ({tag})"))
    else:
        if hi is not None:
            lines.append((hi, f"{symbol} ≤ {_fmt(hi)} (upper)"))
        if lo is not None:
            lines.append((lo, f"{symbol} ≥ {_fmt(lo)} (lower estimate)"))
    usable = [(v, lab) for v, lab in lines if v > 1e-200]
    note = ""
    if lines and not usable:
        note = f"{symbol} ≈ 0 assumed (e.g. exact full-batch gradients)"
    return usable, note


# (caption, title, y label, series keys (legend labels from the observables table), constant,
# symbol, square)
_PROBE_SPECS: tuple[tuple[str, str, str, tuple[str, ...], str | None, str, bool], ...] = (
    ("Training loss over steps (minibatch loss and the full objective at checkpoints)",
     "loss", "loss", (KEY.loss, KEY.full_loss), None, "", False),
    ("Suboptimality F − f* at checkpoints", "suboptimality", "F − f*", (KEY.suboptimality,),
     None, "", False),
    ("Smoothness estimates (each a lower estimate of L) against the L the verdicts used",
     "smoothness estimates vs L", "curvature",
     (KEY.local_smoothness, KEY.full_smoothness, KEY.sharpness), "L", "L", False),
    ("PL ratio ‖∇F‖²/(2(F − f*)) (an upper estimate of μ) against the μ the verdicts used",
     "PL ratio vs μ", "‖∇F‖² / (2(F − f*))", (KEY.pl_ratio,), "mu", "μ", False),
    ("Gradient noise of the optimizer's batch gradient against the σ² the verdicts used",
     "batch gradient noise vs σ²", "E‖g − ∇F‖²", (KEY.gradient_noise_batch,), "sigma", "σ",
     True),
    ("Gradient norm over steps against the G the verdicts used", "gradient norm vs G",
     "‖g‖", (KEY.grad_norm, KEY.full_grad_norm), "G", "G", False),
    ("Gradient ∞-norm over steps against the G∞ the verdicts used", "gradient ∞-norm vs G∞",
     "‖g‖∞", (KEY.grad_inf_norm,), "G_inf", "G∞", False),
)


def _series_plot(caption: str, title: str, ylabel: str,
                 series: list[tuple[str, str, list[tuple[float, float]]]],
                 hlines: list[tuple[float, str]], notes: Sequence[str] = (),
                 xlabel: str = "step", gid_prefix: str = "series-",
                 styles: Mapping[str, str] | None = None) -> str:
    with matplotlib.rc_context(_RC):
        fig, ax = _new_figure()
        yf = _LogFilter([y for _, _, pts in series for _, y in pts] + [v for v, _ in hlines])
        for i, (key, label, pts) in enumerate(series):
            _line(ax, yf.keep(pts), f"{gid_prefix}{key}", label, PALETTE[i % len(PALETTE)],
                  (styles or {}).get(key, "-"),
                  marker=MARKERS[i % len(MARKERS)] if len(pts) <= 30 else "")
        for j, (v, label) in enumerate(hlines):
            if yf.log and v <= 0:
                continue
            ln = ax.axhline(v, color=FOREGROUND, linestyle=("--", "-.")[j % 2], linewidth=1.1,
                            alpha=0.75, label=label, zorder=1.5)
            ln.set_gid(f"constant-{j}")
        if yf.log:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        _set_title(ax, title, [*notes, _dropped_note(yf.dropped)])
        _legend(ax)
        fig.tight_layout()
        return _finish(fig, caption)


def probe_plots(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(caption, svg)`` for the informative probe series, each against the constant the
    theory assumed where the verdict engine knew one (``results["constants"]``: ``lo == hi``
    one line "(exact)"/"(asserted)", else "≤ hi (upper)" and/or "≥ lo (lower estimate)").

    In order, when their series exist: loss and full loss; suboptimality; smoothness
    estimates (local_smoothness, full_smoothness, sharpness) vs L; pl_ratio vs μ;
    gradient_noise_batch vs σ²; grad_norm (and full_grad_norm) vs G; grad_inf_norm vs G∞.
    At most :data:`MAX_PROBE_PLOTS`. Probes without series are skipped.
    """
    avail = _probe_series(results)
    out: list[tuple[str, str]] = []
    for caption, title, ylabel, keys, const, symbol, square in _PROBE_SPECS:
        series = [(k, OBSERVABLES[k].label, avail[k]) for k in keys if k in avail]
        if not series:
            continue
        hlines, note = (_constant_lines(results, const, symbol, square) if const
                        else ([], ""))
        out.append((caption, _series_plot(caption, title, ylabel, series, hlines, [note])))
        if len(out) >= MAX_PROBE_PLOTS:
            break
    return out


def sharpness_plot(results: Mapping[str, Any]) -> str | None:
    """Sharpness (top Hessian eigenvalue) over steps against 2/η_t from ``lr_series``: the
    edge-of-stability picture (gradient descent on a quadratic diverges once the sharpness
    exceeds 2/η). Log y when every value is positive (steps with η = 0 are left out of 2/η).
    None when there is no sharpness series."""
    avail = _probe_series(results)
    sharp = avail.get(KEY.sharpness)
    if not sharp:
        return None
    lr = results.get("lr_series") or {}
    two_over = [(k, 2.0 / v) for k, v in _pairs(lr.get("step"), lr.get("lr")) if v > 0]
    series = [(KEY.sharpness, "sharpness λ_max(∇²f)", sharp)]
    if two_over:
        series.append(("two_over_lr", "2/η_t", two_over))
    caption = "Sharpness over steps against 2/η_t (edge of stability)"
    return _series_plot(caption, "sharpness vs 2/η (edge of stability)", "curvature", series,
                        [], styles={"two_over_lr": "--"})


# ------------------------------------------------------------------ comparison

def frontier_plot(compare: Mapping[str, Any]) -> str | None:
    """Quality (``compare["quality"]["description"]``) against training gradient evaluations,
    log y, one line per optimizer (colour and marker), with the Pareto-frontier points ringed
    and joined by a step line. None when no optimizer has a point."""
    opts = [o for o in compare.get("optimizers") or [] if isinstance(o, Mapping)]
    curves = []
    for o in opts:
        pts = _pairs([p.get("grad_evals") for p in o.get("points") or []],
                     [p.get("quality") for p in o.get("points") or []])
        if pts:
            curves.append((str(o.get("label") or f"optimizer {o.get('index')}"), pts))
    if not curves:
        return None
    front = _pairs([p.get("grad_evals") for p in compare.get("frontier") or []],
                   [p.get("quality") for p in compare.get("frontier") or []])
    qual = compare.get("quality") or {}
    ylabel = str(qual.get("description") or "quality")
    if len(ylabel) > 48:
        ylabel = ylabel.split("(")[0].strip() or ylabel[:48]
    caption = (f"Quality against gradient evaluations for {len(curves)} optimizer"
               f"{'s' if len(curves) != 1 else ''}, Pareto frontier highlighted")
    with matplotlib.rc_context(_RC):
        fig, ax = _new_figure()
        yf = _LogFilter([y for _, pts in curves for _, y in pts] + [y for _, y in front])
        for i, (label, pts) in enumerate(curves):
            kept = yf.keep(pts)
            _line(ax, kept, f"series-optimizer-{i + 1}", label, PALETTE[i % len(PALETTE)],
                  ("-", "--", "-.", ":")[(i // len(PALETTE)) % 4],
                  marker=MARKERS[i % len(MARKERS)] if len(kept) <= 60 else "")
        counted = yf.dropped
        fk = yf.keep(front)
        yf.dropped = counted              # frontier points are curve points: counted once
        if fk:
            xs, ys = zip(*fk)
            (ln,) = ax.step(xs, ys, where="post", color=FOREGROUND, linewidth=0.9, alpha=0.6,
                            zorder=3)
            ln.set_gid("frontier-line")
            sc = ax.scatter(xs, ys, s=70, facecolors="none", edgecolors=FOREGROUND,
                            linewidths=1.3, label="Pareto frontier", zorder=4)
            sc.set_gid("frontier-points")
        if yf.log:
            ax.set_yscale("log")
        ax.set_xlabel("training gradient evaluations")
        ax.set_ylabel(ylabel)
        wl = (compare.get("workload") or {}).get("name")
        _set_title(ax, "quality vs gradient evaluations" + (f" — {wl}" if wl else ""),
                   [_dropped_note(yf.dropped)])
        _legend(ax)
        fig.tight_layout()
        return _finish(fig, caption)


# ------------------------------------------------------------------ stability

def stability_plot(results: Mapping[str, Any]) -> str | None:
    """Early stopping as approximation: the generalization gap (held-out − training loss) and
    the measured loss difference ε̂ against the number of steps T, with the stability bound's
    ε(T) where it was instantiated, and the best early-stopping point by held-out loss."""
    st = results.get("stability") or {}
    ck = st.get("checkpoints") or {}
    ks = ck.get("k") or []
    if not ks:
        return None
    gap = _pairs(ks, ck.get("generalization_gap"))
    eps = _pairs(ks, ck.get("eps_hat"))
    bound = _pairs(ks, ck.get("eps_bound")) if ck.get("eps_bound") else []
    caption = ("Stability: generalization gap and measured loss difference against T, the "
               "stability bound, and the early-stopping point")
    with matplotlib.rc_context(_RC):
        fig, ax = _new_figure()
        _line(ax, gap, "series-gap", "generalization gap (held-out − train)", PALETTE[0])
        _line(ax, eps, "series-eps", "ε̂ = max_z |f(x_T; z) − f(x'_T; z)|", PALETTE[1])
        if bound:
            _line(ax, bound, "series-eps-bound", "stability bound ε(T)", PALETTE[2], style="--")
        es = st.get("early_stopping")
        if es and es.get("k") is not None:
            ax.axvline(float(es["k"]), color=PALETTE[4], linestyle=":", linewidth=1.0,
                       label=f"best held-out loss at T = {es['k']}").set_gid("early-stopping")
        ax.set_xlabel("steps T")
        ax.set_ylabel("loss difference")
        if bound and all(y > 0 for _, y in gap + eps + bound):
            ax.set_yscale("log")
        _legend(ax)
        _set_title(ax, "stability against T", [])
        fig.tight_layout()
        return _finish(fig, caption)


def consensus_plot(results: Mapping[str, Any]) -> str | None:
    """Consensus distance of a decentralized run against the contraction the mixing matrix's
    spectral gap predicts for gossip alone: c_t ≈ c_first · |λ₂|^(t − t_first)."""
    dec = results.get("decentralized") or {}
    series = None
    for p in results.get("probes") or []:
        s = (p.get("series") or {}).get(KEY.consensus_distance)
        if s:
            series = s
    if not series:
        return None
    pts = _pairs(series.get("k"), series.get("value"))
    if not pts:
        return None
    lam = _num(dec.get("lambda_2_abs"))
    if lam is None and _num(dec.get("spectral_gap")) is not None:
        lam = 1.0 - float(dec["spectral_gap"])
    bound = next((v for v in results.get("verdicts") or []
                  if v.get("quantity") == Quantity.CONSENSUS_DISTANCE.value
                  and v.get("series")), None)
    caption = ("Consensus distance sqrt((1/N) Σ‖x_i − x̄‖²) against the consensus bound's "
               "prediction and the gossip contraction |λ₂|^t of the mixing matrix")
    with matplotlib.rc_context(_RC):
        fig, ax = _new_figure()
        _line(ax, pts, "series-consensus", "consensus distance", PALETTE[0])
        positive = [v for _, v in pts if v > 0]
        # gossip alone falls geometrically; drawn only down to a decade below the data, so
        # that with gradients it does not squash the measured curve against the axis
        floor = min(positive) / 10 if positive else 0.0
        if lam is not None and 0 <= lam < 1 and pts[0][1] > 0:
            k0, c0 = pts[0]
            pred = [(k, c0 * lam ** (k - k0)) for k, _ in pts]
            pred = [(k, v) for k, v in pred if v > 0 and v >= floor]
            _line(ax, pred, "series-gossip", f"gossip alone: |λ₂|^t, |λ₂| = {lam:.3g}",
                  PALETTE[1], style="--")
        bpts = []
        if bound is not None:
            bpts = [(k, v) for k, v in _pairs(bound["series"].get("k"),
                                              bound["series"].get("predicted")) if v > 0]
            if bpts:
                _line(ax, bpts, "series-consensus-bound",
                      f"bound ({bound['verdict']}): {bound['id']}", PALETTE[2], style=":")
        if all(v > 0 for _, v in pts):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("consensus distance")
        _legend(ax)
        _set_title(ax, f"consensus ({dec.get('method', 'decentralized')})", [])
        fig.tight_layout()
        return _finish(fig, caption)
