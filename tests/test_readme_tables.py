"""The result tables of README.md and docs/*.md are the ones bench/readme_tables.py builds from the
committed files; the README stays a front page and every relative link of these pages resolves."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import load_bench_script

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "results.md"  # the page that holds the accuracy and scoring_cost blocks


RT = load_bench_script("readme_tables")


@pytest.fixture(scope="module")
def tables() -> dict[str, str]:
    return RT.generate()


def test_readme_blocks_equal_the_generated_tables(tables):
    assert set(RT.blocks(README.read_text())) == {"paper_vs_suite"}
    assert set(RT.blocks(RESULTS.read_text())) == {"scoring_cost", "accuracy"}
    found: dict[str, str] = {}
    for page in RT.pages():
        for name, body in RT.blocks(page.read_text()).items():
            assert name not in found, f"block {name!r} appears twice"
            found[name] = body
    assert set(found) == set(tables)
    for name, table in tables.items():
        assert found[name] == table, f"block {name!r} is stale: run python bench/readme_tables.py"
    assert RT.main(["--check"]) == 0


def test_paper_vs_suite_states_the_files_numbers(tables):
    table = tables["paper_vs_suite"]
    assert "39x (Qwen2.5-7B, GSM8K train: 175 s against 6,827 s), up to 185x" in table
    assert "**20.1x**" in table and "7.83 s against 157.33 s" in table and "2-core AMD EPYC CPU" in table
    assert "**45.1x**" in table and "**35.6x**" in table and "**122.3x**" in table
    assert "-0.027 [-0.044, -0.012]" in table and "no (**worse**)" in table
    assert "-0.017 [-0.036, +0.003]" in table and "no (**inconclusive**)" in table
    assert "+0.028 [+0.012, +0.045]" in table and "`multisample-band`, 6 seeds" in table


def test_paper_vs_suite_follows_the_differences(tmp_path):
    ref = tmp_path / "embedded"
    shutil.copytree(RT.REFERENCE / "tables", ref / "tables")
    path = ref / "tables" / "differences.csv"
    rows = path.read_text().splitlines()
    rows = [r.replace(",-0.044016666666666635,-0.012,", ",0.001,0.05,") if r.startswith("default,embedded,ufo,full,")
            else r for r in rows]
    path.write_text("\n".join(rows) + "\n")
    table = RT.paper_vs_suite_table(ref)
    assert "-0.027 [+0.001, +0.050]" in table and "yes (**better**)" in table


def test_readme_is_a_front_page():
    assert len(README.read_text().splitlines()) <= 250


LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_relative_link_resolves():
    bad = []
    for page in RT.pages():
        for target in LINK.findall(page.read_text()):
            if re.match(r"(https?|mailto):", target) or target.startswith("#"):
                continue
            path = target.split("#")[0]
            if not (page.parent / path).exists():
                bad.append(f"{page.relative_to(ROOT)}: {target}")
    assert not bad, bad
    assert not any("../shared" in page.read_text() for page in RT.pages())


def test_tables_state_the_numbers_of_the_files(tables):
    """Spot checks against the csv files, read here with the csv module and rounded by hand."""
    acc = {(r["variant"], r["phase"]): r for r in
           csv.DictReader((RT.REFERENCE / "tables" / "accuracy.csv").read_text().splitlines())}
    full_before = acc[("full", "before")]
    assert round(float(full_before["avg_at_k_mean"]), 3) == 0.432  # three seeds' samples
    assert round(float(full_before["avg_at_k_std"]), 3) == 0.001
    rows = {line.split(" | ")[0].lstrip("| "): line for line in tables["accuracy"].splitlines()[2:]}
    assert "(0.432 ± 0.001)" in rows["full (2,000 prompts)"]
    assert "+0.050 ± 0.007" in rows["full (2,000 prompts)"]
    assert rows["ufo (Top-Mid, 10%)"].split(" | ")[2] == "0.481 ± 0.005 (0.441 ± 0.002)"
    cost = {(r["method"], r["target"]): r for r in
            csv.DictReader((RT.REFERENCE / "tables" / "scoring_cost.csv").read_text().splitlines())}
    assert f"{float(cost['ufo', 'answer']['speedup']):.1f}" == "20.1"
    assert "**20.1x**" in tables["scoring_cost"] and "648,046 (4,119 tok/s)" in tables["scoring_cost"]


def test_fixed_decimals_round_half_up():
    assert RT.fixed(0.2065, 3) == "0.207" and RT.fixed(0.2125, 3) == "0.213"
    assert RT.fixed(0.0, 3) == "0.000" and RT.fixed(-1e-9, 3) == "0.000"
    assert RT.fixed(0.11333333, 3, sign=True) == "+0.113" and RT.fixed(-0.05, 2, sign=True) == "-0.05"
    assert RT.fixed(2130.06, 0) == "2,130" and RT.fixed(191.6, 0) == "192"


def test_a_changed_number_is_caught_and_rewritten(tmp_path, capsys):
    text = RESULTS.read_text()
    block = RT.blocks(text)["accuracy"]
    assert block.count("0.481 ± 0.005 (0.441 ± 0.002)") == 1
    drifted = tmp_path / "results.md"
    drifted_text = text.replace(block, block.replace("0.481 ± 0.005 (0.441", "0.482 ± 0.005 (0.441"))
    drifted.write_text(drifted_text)

    assert RT.main(["--readme", str(drifted), "--check"]) == 1
    out = capsys.readouterr().out
    assert "-| ufo (Top-Mid, 10%) | 0.458 ± 0.000 (0.432 ± 0.001) | 0.482 ± 0.005 (0.441" in out
    assert "+| ufo (Top-Mid, 10%) | 0.458 ± 0.000 (0.432 ± 0.001) | 0.481 ± 0.005 (0.441" in out
    assert drifted.read_text() == drifted_text  # --check writes nothing

    assert RT.main(["--readme", str(drifted)]) == 0  # rewrite
    assert drifted.read_text() == text
    assert RT.main(["--readme", str(drifted), "--check"]) == 0


def test_check_exit_status_as_a_process(tmp_path):
    drifted = tmp_path / "results.md"
    drifted.write_text(RESULTS.read_text().replace("| 159 ± 8 |", "| 190 ± 8 |"))
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "readme_tables.py"), "--check",
                          "--readme", str(drifted)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "190 ± 8" in res.stdout and "159 ± 8" in res.stdout


def test_a_changed_source_file_changes_the_table(tmp_path):
    ref = tmp_path / "embedded"
    shutil.copytree(RT.REFERENCE / "tables", ref / "tables")
    shutil.copytree(RT.REFERENCE / "runs", ref / "runs",
                    ignore=shutil.ignore_patterns("eval_samples", "*.parquet", "samples.jsonl", "subset*"))
    path = ref / "tables" / "accuracy.csv"
    path.write_text(path.read_text().replace(",0.48066666666666663,", ",0.301,"))
    assert "| 0.301 ± 0.005 (0.441 ± 0.002) | +0.023 ± 0.005 |" in RT.accuracy_table(ref)
    assert RT.main(["--readme", str(RESULTS), "--reference", str(ref), "--check"]) == 1


def test_a_missing_or_unknown_block_is_an_error(tmp_path, tables):
    text = README.read_text() + RESULTS.read_text()
    with pytest.raises(ValueError, match=r"missing \['accuracy'\]"):
        RT.render(re.sub(r"<!-- generated: accuracy -->.*?<!-- /generated -->", "", text, flags=re.S), tables)
    with pytest.raises(ValueError, match=r"unknown \['lr'\]"):
        RT.render(text + "\n<!-- generated: lr -->\n<!-- /generated -->\n", tables)
    with pytest.raises(ValueError, match=r"repeated \['paper_vs_suite'\]"):
        RT.render_pages({README: README.read_text(), RESULTS: RESULTS.read_text() + README.read_text()}, tables)
    bad = tmp_path / "results.md"
    bad.write_text(RESULTS.read_text().replace("<!-- /generated -->", ""))
    assert RT.main(["--readme", str(bad), "--check"]) == 2
    # the default pages must hold every table: README.md alone lacks the accuracy block
    assert RT.main(["--readme", str(README), "--check"]) == 0
