"""The README's result tables are the ones bench/readme_tables.py builds from the committed files."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import load_bench_script

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


RT = load_bench_script("readme_tables")


@pytest.fixture(scope="module")
def tables() -> dict[str, str]:
    return RT.generate()


def test_readme_blocks_equal_the_generated_tables(tables):
    found = RT.blocks(README.read_text())
    assert set(found) == {"scoring_cost", "accuracy"}
    for name, table in tables.items():
        assert found[name] == table, f"README block {name!r} is stale: run python bench/readme_tables.py"


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
    text = README.read_text()
    block = RT.blocks(text)["accuracy"]
    assert block.count("0.481 ± 0.005 (0.441 ± 0.002)") == 1
    drifted = tmp_path / "README.md"
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
    drifted = tmp_path / "README.md"
    drifted.write_text(README.read_text().replace("| 159 ± 8 |", "| 190 ± 8 |"))
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
    assert RT.main(["--readme", str(README), "--reference", str(ref), "--check"]) == 1


def test_a_missing_or_unknown_block_is_an_error(tmp_path, tables):
    text = README.read_text()
    with pytest.raises(ValueError, match=r"missing \['accuracy'\]"):
        RT.render(text.replace("<!-- generated: accuracy -->", "<!-- accuracy -->"), tables)
    with pytest.raises(ValueError, match=r"unknown \['lr'\]"):
        RT.render(text + "\n<!-- generated: lr -->\n<!-- /generated -->\n", tables)
    bad = tmp_path / "README.md"
    bad.write_text(text.replace("<!-- /generated -->", ""))
    assert RT.main(["--readme", str(bad), "--check"]) == 2
