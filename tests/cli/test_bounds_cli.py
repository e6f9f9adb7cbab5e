"""``approx-audit bounds ...`` through click's CliRunner: outputs, JSON shapes, exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from approx_audit.bounds import catalogue
from approx_audit.cli.main import cli

REQUIRED_KEYS = {"id", "algorithm", "setting", "quantity", "kind", "assumptions", "conditions",
                 "rhs", "latex", "citation", "tight", "expectation", "verified"}


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_list_text_and_json():
    res = run("bounds", "list")
    assert res.exit_code == 0
    assert "gd.smooth_convex.drori_teboulle_2014" in res.stdout
    res = run("bounds", "list", "--format", "json")
    data = json.loads(res.stdout)
    assert len(data) == len(catalogue)
    for item in data:
        assert REQUIRED_KEYS <= set(item)
        assert item["kind"] in ("upper", "lower")
        assert item["citation"]["locator"]


def test_list_filters():
    data = json.loads(run("bounds", "list", "--algorithm", "sgd", "--format", "json").stdout)
    assert data and all(d["algorithm"] == "sgd" for d in data)
    data = json.loads(run("bounds", "list", "--assumption", "pl", "--format", "json").stdout)
    assert data and all("pl" in d["assumptions"] for d in data)
    res = run("bounds", "list", "--algorithm", "sdg")
    assert res.exit_code == 2 and "did you mean sgd" in res.stderr


@pytest.mark.parametrize("fmt", ["text", "json", "latex", "mathml"])
def test_show_formats(fmt):
    res = run("bounds", "show", "agd.smooth_convex.bubeck_2015", "--format", fmt)
    assert res.exit_code == 0
    out = res.stdout
    if fmt == "json":
        d = json.loads(out)
        assert REQUIRED_KEYS <= set(d) and d["order"] == "K**(-2)"
    elif fmt == "latex":
        assert r"\le" in out
    elif fmt == "mathml":
        assert ET.fromstring(out.strip()).tag.endswith("math")
    else:
        assert "Theorem 3.19" in out and "assumptions:" in out


def test_eval_json_shape_with_range_and_expression():
    res = run("bounds", "eval", "gd.smooth_convex.drori_teboulle_2014", "L=2", "R=1",
              "eta=1/L", "K=1:100", "--format", "json")
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    assert set(d) >= {"id", "values", "K", "rhs", "conditions"}
    assert d["values"] == {"L": 2.0, "R": 1.0, "eta": 0.5}
    assert d["K"] == list(range(1, 101))
    assert d["rhs"][0] == pytest.approx(2 / 6)
    assert d["conditions"][0]["holds"] is True
    assert {"condition", "holds", "slack"} <= set(d["conditions"][0])


def test_eval_text_reports_a_failed_condition():
    res = run("bounds", "eval", "gd.smooth_convex.beck_2017", "R=1", "eta=0.1", "L=31.25", "K=10")
    assert res.exit_code == 0
    assert "FAILS" in res.stdout and "3.125" in res.stdout


@pytest.mark.parametrize("args, fragment", [
    (("bounds", "eval", "gd.smooth_convex.beck_2017", "eta=0.1", "K=10"), "needs a value for R"),
    (("bounds", "eval", "gd.smooth_convex.beck_2017", "R=1", "eta=__import__('os')", "K=1"),
     "not allowed"),
    (("bounds", "eval", "gd.smooth_convex.beck_2017", "R=1", "eta=0.1", "K=1", "sigma=1"),
     "does not use sigma"),
    (("bounds", "eval", "gd.smooth_convex.beck_2017", "R=1", "eta=-1", "K=1"), "must be > 0"),
    (("bounds", "eval", "gd.smooth_convex.beck_2017", "R=1", "eta=1/L", "K=1"), "refers to L"),
    (("bounds", "eval", "gd.smooth_convex.beck_2017", "R", "K=1"), "NAME=VALUE"),
    (("bounds", "eval", "gd.smooth_convex.beck_2017", "R=1", "eta=1", "K=0:5"), ">= 1"),
    (("bounds", "eval", "gd.smooth_convex.beck_2017", "R=eta", "eta=R", "K=1"), "cycle"),
    (("bounds", "show", "no.such.bound_2020"), "unknown bound id"),
    (("bounds", "complexity", "gd.smooth_convex.beck_2017", "--eps", "-1", "R=1", "eta=1"),
     "positive"),
    (("bounds", "complexity", "sgd.nonconvex.bottou_2018", "--eps", "1e-3", "L=1", "sigma=1",
      "Delta=1", "eta=0.5"), "floor"),
])
def test_bad_input_is_one_line_exit_2_and_no_stdout(args, fragment):
    res = run(*args)
    assert res.exit_code == 2, (res.stdout, res.stderr)
    assert fragment in res.stderr
    assert res.stderr.strip().count("\n") == 0
    assert res.stdout == ""


def test_complexity_text_and_json():
    res = run("bounds", "complexity", "gd.smooth_convex.drori_teboulle_2014", "--eps", "1e-3",
              "L=1", "R=1", "eta=1/L")
    assert res.exit_code == 0 and "K = 250" in res.stdout
    d = json.loads(run("bounds", "complexity", "first_order.smooth_convex.nesterov_2018",
                       "--eps", "1e-3", "L=1", "R=1", "d=10000", "--format", "json").stdout)
    assert d["kind"] == "lower" and d["K"] >= 1
    assert d["method"] in ("closed_form", "monotone_search", "already")


def test_version_and_help():
    assert run("--version").exit_code == 0
    res = run("bounds", "--help")
    assert res.exit_code == 0 and "eval" in res.stdout


def test_console_script_entry_point():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "approx_audit.cli.main", "bounds", "show",
                          "no.such.id_2020"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: unknown bound id")


def test_readme_lists_every_catalogue_bound():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [b.id for b in catalogue if f"`{b.id}`" not in readme]
    assert not missing, f"README's catalogue table lacks {missing}"


def test_a_grid_too_large_names_its_real_cause():
    res = run("bounds", "eval", "gd.smooth_convex.drori_teboulle_2014", "L=1", "R=1", "eta=1",
              "K=1:1000000000")
    assert res.exit_code == 2 and "more than 1000000 points" in res.stderr
    assert "not a range" not in res.stderr
