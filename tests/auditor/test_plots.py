"""``auditor/report/plots.py``: SVG strings from results.json and compare.json (parse, size, no
external reference, currentColor, determinism, the None / skip cases)."""

from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from approx_audit.auditor.report import plots

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "results_logistic.json"
SVG_NS = "{http://www.w3.org/2000/svg}"
MAX_BYTES = 80_000
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


@pytest.fixture(scope="module")
def results():
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def bound_svgs(results):
    return {v["id"]: plots.bound_plot(v) for v in results["verdicts"]}


@pytest.fixture(scope="module")
def probe_svgs(results):
    return plots.probe_plots(results)


@pytest.fixture(scope="module")
def sharp_svg(results):
    return plots.sharpness_plot(results)


def _compare_dict():
    """Shaped like CompareResult.to_dict() (only what frontier_plot reads is meaningful)."""
    def pts(qs):
        return [{"k": k, "grad_evals": k, "examples": 10 * k, "full_loss": q + 0.1,
                 "quality": q} for k, q in zip(range(0, 10 * len(qs), 10), qs)]
    a = pts([1.0, 0.5, 0.2, 0.1, 0.05])
    b = pts([1.0, 0.3, 0.25, 0.2, 0.19])
    c = pts([1.0, 0.9, 0.0, -1e-3])          # non-positive points: dropped on the log axis
    curves = [("sgd(lr=0.1)", a), ("adam(lr=0.01)", b), ("broken", c)]
    front = []
    for i, (lab, ps) in enumerate(curves):
        for p in ps:
            if p["k"] >= 1:
                front.append((p["grad_evals"], p["quality"], i + 1, lab, p))
    front.sort(key=lambda t: (t[0], t[1]))
    frontier, best = [], None
    for x, y, idx, lab, p in front:
        if best is None or y < best:
            frontier.append({"grad_evals": x, "examples": p["examples"], "k": p["k"],
                             "quality": y, "optimizer": idx, "label": lab})
            best = y
    return {"schema_version": "0.1", "status": "completed", "message": None,
            "workload": {"name": "logistic", "options": {}, "n": 10, "f_star": 0.1,
                         "f_lower": 0.1, "description": "test"},
            "quality": {"kind": "suboptimality", "reference": 0.1,
                        "description": "suboptimality F − f* (f* known exactly)",
                        "ratio": True, "ratio_description": "approximation ratio F/f*"},
            "budget": {"grad_evals": 40, "steps": 40, "batch_size": None,
                       "examples_per_grad_eval": 10, "unit": "..."},
            "seeds": 1, "seed": 0, "checkpoint_every": 10, "targets": [0.5, 0.1],
            "optimizers": [{"index": i + 1, "label": lab, "optimizer": {"name": lab},
                            "out": f"out/{i + 1:02d}", "status": "completed", "message": None,
                            "usable": True, "initial": ps[0], "final": ps[-1], "best": None,
                            "targets": [], "on_frontier": True, "frontier_points": 1,
                            "verdict_counts": {}, "gradient_evaluations": {}, "points": ps}
                           for i, (lab, ps) in enumerate(curves)],
            "frontier": frontier, "frontier_note": "...", "out": "out"}


def _check_svg(svg: str, min_series: int = 1) -> ET.Element:
    assert isinstance(svg, str)
    assert svg.lstrip().startswith("<svg")                       # no prolog / doctype
    assert "<?xml" not in svg and "<!DOCTYPE" not in svg
    assert len(svg.encode("utf-8")) < MAX_BYTES
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    assert root.get("role") == "img" and root.get("aria-label")
    title = root.find(f"{SVG_NS}title")
    assert title is not None and title.text == root.get("aria-label")
    # the only URLs are namespace declarations
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", svg))
    assert urls <= NAMESPACES, urls
    assert "<metadata" not in svg
    assert "currentColor" in svg
    assert not re.search(r"(fill|stroke)\s*[:=]\s*\"?(#000000|black)\b", svg)
    series = [g for g in root.iter(f"{SVG_NS}g") if (g.get("id") or "").startswith("series-")]
    assert len(series) >= min_series, [g.get("id") for g in series]
    for g in series:                                             # each series drew something
        assert g.find(f".//{SVG_NS}path") is not None or g.find(f".//{SVG_NS}use") is not None
    return root


def _ids(svg: str, prefix: str) -> list[str]:
    root = ET.fromstring(svg)
    return [g.get("id") for g in root.iter(f"{SVG_NS}g") if (g.get("id") or "").startswith(prefix)]


# ------------------------------------------------------------------ bound plots

def test_bound_plots_on_fixture(results, bound_svgs):
    with_series = [v["id"] for v in results["verdicts"] if v.get("series")]
    assert with_series                                           # the fixture has some
    for v in results["verdicts"]:
        svg = bound_svgs[v["id"]]
        if not v.get("series"):
            assert svg is None
            continue
        root = _check_svg(svg, min_series=2)
        assert set(_ids(svg, "series-")) >= {"series-observed", "series-predicted"}
        assert v["id"] in root.get("aria-label") and v["verdict"] in root.get("aria-label")
        text = "".join(root.itertext())
        assert v["id"] in text and v["verdict"] in text          # the title


def test_bound_plot_none_without_series(results):
    v = copy.deepcopy(results["verdicts"][0])
    for empty in (None, {}, {"k": [], "observed": [], "predicted": []}):
        v["series"] = empty
        assert plots.bound_plot(v) is None
    v["series"] = {"k": [1, 2], "observed": [None, None], "predicted": [None, float("nan")]}
    assert plots.bound_plot(v) is None


def test_bound_plot_margin_band_and_non_positive(results):
    v = copy.deepcopy(next(x for x in results["verdicts"] if x.get("series")))
    s = v["series"]
    n = len(s["k"])
    s["observed"][3] = 0.0
    s["observed"][4] = -1e-3
    s["margin"] = [0.2 * abs(o) for o in s["observed"]]
    s["observed_sd"] = [0.1 * abs(o) for o in s["observed"]]
    s["observed_max"] = [1.3 * abs(o) for o in s["observed"]]
    v["expectation"] = True
    svg = plots.bound_plot(v)
    _check_svg(svg, min_series=4)
    assert set(_ids(svg, "series-")) == {"series-observed", "series-predicted",
                                         "series-margin", "series-observed-max"}
    # said in the title: observed 0 and −1e-3, and observed_max 0 where observed is 0
    assert "3 points ≤ 0 not shown" in svg
    assert n >= 5


def test_bound_plot_all_non_positive_falls_back_to_linear(results):
    v = copy.deepcopy(next(x for x in results["verdicts"] if x.get("series")))
    v["series"] = {"k": [1.0, 2.0, 3.0], "observed": [0.0, -1.0, -2.0],
                   "predicted": [-0.5, -0.5, -0.5]}
    svg = plots.bound_plot(v)
    _check_svg(svg, min_series=2)
    assert "not shown" not in svg


def test_bound_plot_bad_latex_falls_back(results):
    v = copy.deepcopy(next(x for x in results["verdicts"] if x.get("series")))
    v["quantity_latex"] = r"\notacommand{x"
    _check_svg(plots.bound_plot(v), min_series=2)


# ------------------------------------------------------------------ probes

def test_probe_plots_on_fixture(probe_svgs):
    assert 1 <= len(probe_svgs) <= plots.MAX_PROBE_PLOTS
    captions = [c for c, _ in probe_svgs]
    assert len(set(captions)) == len(captions)
    for caption, svg in probe_svgs:
        root = _check_svg(svg)
        assert root.get("aria-label") == caption
    by = {c.split(" against")[0].split(" over")[0].split(" (")[0]: svg
          for c, svg in probe_svgs}
    assert set(by) == {"Training loss", "Suboptimality F − f* at checkpoints",
                       "Smoothness estimates", "PL ratio ‖∇F‖²/(2(F − f*))",
                       "Gradient noise of the optimizer's batch gradient", "Gradient norm",
                       "Gradient ∞-norm"}, set(by)
    smooth = by["Smoothness estimates"]
    assert set(_ids(smooth, "series-")) == {"series-local_smoothness", "series-full_smoothness",
                                            "series-sharpness"}
    assert _ids(smooth, "constant-") == ["constant-0"]           # L lo == hi: one line
    assert "L = 3.32 (exact)" in smooth
    assert "G ≥ 1.32 (lower estimate)" in by["Gradient norm"]    # G: only a lower estimate
    assert "G∞ ≥ 0.368 (lower estimate)" in by["Gradient ∞-norm"]
    assert "μ = 0.001 (exact)" in by["PL ratio ‖∇F‖²/(2(F − f*))"]
    noise = by["Gradient noise of the optimizer's batch gradient"]
    assert _ids(noise, "constant-") == [] and "σ² ≈ 0 assumed" in noise  # sigma = 1e-300
    assert sum(len(s.encode()) for _, s in probe_svgs) < 500_000


def test_probe_plots_constant_lines_lo_hi(results):
    r = copy.deepcopy(results)
    r["constants"]["L"].update(lo=0.5, hi=2.0)
    r["probes"] = [p for p in r["probes"] if p["name"] == "local_smoothness"]
    (_, smooth), = plots.probe_plots(r)
    assert _ids(smooth, "constant-") == ["constant-0", "constant-1"]
    assert "L ≤ 2 (upper)" in smooth and "L ≥ 0.5 (lower estimate)" in smooth


def test_probe_plots_skip_probes_without_series(results):
    r = copy.deepcopy(results)
    keep = {"loss", "grad_norm", "pl_ratio"}
    for p in r["probes"]:
        if p["name"] not in keep:
            p["series"] = {} if p["name"] != "sharpness" else None
    out = plots.probe_plots(r)
    caps = [c for c, _ in out]
    assert len(out) == 4, caps            # loss, PL ratio, grad norm, grad inf norm
    assert not any(c.startswith(("Smoothness", "Suboptimality", "Gradient noise"))
                   for c in caps)
    loss = out[0][1]
    assert _ids(loss, "series-") == ["series-loss"]             # full_loss gone with its probe
    r["probes"] = []
    assert plots.probe_plots(r) == []
    del r["probes"]
    assert plots.probe_plots(r) == []


# ------------------------------------------------------------------ sharpness

def test_sharpness_plot_on_fixture(sharp_svg):
    _check_svg(sharp_svg, min_series=2)
    assert _ids(sharp_svg, "series-") == ["series-sharpness", "series-two_over_lr"]


def test_sharpness_plot_none_without_sharpness(results):
    r = copy.deepcopy(results)
    r["probes"] = [p for p in r["probes"] if p["name"] != "sharpness"]
    assert plots.sharpness_plot(r) is None
    r["lr_series"] = {"step": [0, 1, 2], "lr": [0.1, 0.0, None]}
    r["probes"].append({"name": "sharpness", "series": {"sharpness": {"k": [], "value": []}}})
    assert plots.sharpness_plot(r) is None


def test_sharpness_plot_without_lr_series(results):
    r = copy.deepcopy(results)
    r.pop("lr_series")
    svg = plots.sharpness_plot(r)
    _check_svg(svg)
    assert _ids(svg, "series-") == ["series-sharpness"]


# ------------------------------------------------------------------ frontier

def test_frontier_plot():
    cmp = _compare_dict()
    svg = plots.frontier_plot(cmp)
    _check_svg(svg, min_series=3)
    assert _ids(svg, "series-") == ["series-optimizer-1", "series-optimizer-2",
                                    "series-optimizer-3"]
    assert _ids(svg, "frontier-") == ["frontier-line", "frontier-points"]
    assert "2 points ≤ 0 not shown" in svg
    assert "sgd(lr=0.1)" in svg and "adam(lr=0.01)" in svg
    assert plots.frontier_plot(cmp) == svg                       # deterministic


def test_frontier_plot_none_without_points():
    cmp = _compare_dict()
    for o in cmp["optimizers"]:
        o["points"] = []
    assert plots.frontier_plot(cmp) is None
    assert plots.frontier_plot({"optimizers": [], "frontier": []}) is None


# ------------------------------------------------------------------ determinism, files

def test_deterministic(results, bound_svgs, probe_svgs, sharp_svg):
    v = next(x for x in results["verdicts"] if x.get("series"))
    assert plots.bound_plot(copy.deepcopy(v)) == bound_svgs[v["id"]]
    assert plots.sharpness_plot(results) == sharp_svg
    # one probe plot again, from a copy with only its probes
    r = copy.deepcopy(results)
    r["probes"] = [p for p in r["probes"] if p["name"] == "pl_ratio"]
    (cap, svg), = plots.probe_plots(r)
    assert (cap, svg) in probe_svgs


def test_total_size_on_fixture(bound_svgs, probe_svgs, sharp_svg):
    sizes = [len(s.encode()) for s in bound_svgs.values() if s]
    sizes += [len(s.encode()) for _, s in probe_svgs] + [len(sharp_svg.encode())]
    assert max(sizes) < MAX_BYTES
    assert sum(sizes) < 500_000


def test_svg_to_file(tmp_path, sharp_svg):
    p = plots.svg_to_file(sharp_svg, tmp_path / "sub" / "sharpness.svg")
    text = p.read_text(encoding="utf-8")
    assert text.startswith("<?xml") and text.endswith(sharp_svg)
    root = ET.parse(p).getroot()
    assert root.tag == f"{SVG_NS}svg"
    plots.svg_to_file(text, tmp_path / "again.svg")              # no second prolog
    assert (tmp_path / "again.svg").read_text(encoding="utf-8").count("<?xml") == 1


def _luminance(hex_colour: str) -> float:
    def lin(c):
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("colour", plots.PALETTE)
def test_palette_readable_on_light_and_dark(colour):
    assert _contrast(colour, "#ffffff") >= 3.0
    assert _contrast(colour, "#121212") >= 3.0


def test_consensus_plot_against_the_gossip_contraction():
    ks = list(range(1, 21))
    results = {"decentralized": {"method": "dpsgd", "lambda_2_abs": 1 / 3},
               "probes": [{"name": "decentralized",
                           "series": {"consensus_distance": {"k": ks,
                                                             "value": [3.0 ** -k for k in ks]}}}]}
    svg = plots.consensus_plot(results)
    assert svg and "series-consensus" in svg and "series-gossip" in svg
    assert plots.consensus_plot({"probes": []}) is None
