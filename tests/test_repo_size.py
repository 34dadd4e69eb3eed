"""The repository stays lean and its committed results portable (bench/pack_reference.py), and every
committed reference's tables rebuild unchanged from its run folders."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import load_bench_script

ROOT = Path(__file__).resolve().parents[1]
# A GPU check carries the tracked tree to a machine that takes at most 64 MiB; this leaves room for
# the carried build outputs and the next references.
MAX_TRACKED_MIB = 35


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout")
    return [ROOT / p for p in out.stdout.decode().split("\0") if p]


def _pack():
    return load_bench_script("pack_reference")


def test_tracked_tree_is_under_the_limit():
    files = _tracked()
    total = sum(os.lstat(p).st_size for p in files if os.path.lexists(p))
    biggest = sorted(((os.lstat(p).st_size, p.relative_to(ROOT)) for p in files if os.path.lexists(p)),
                     reverse=True)[:5]
    assert total <= MAX_TRACKED_MIB * 2**20, (
        f"tracked files hold {total / 2**20:.1f} MiB, over {MAX_TRACKED_MIB} MiB: pack new results with "
        f"python bench/pack_reference.py, or drop superseded ones; largest: {biggest}")


def test_committed_results_are_packed():
    """No subset export, no raw per-sample file, no absolute path of the machine that wrote them, no
    second copy of a large file, no unexplained -dirty revision: pack_reference --check is clean."""
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "pack_reference.py"), "--check"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_dirty_reference_says_why():
    for meta_path in sorted((ROOT / "results").rglob("meta.json")):
        prov = json.loads(meta_path.read_text()).get("provenance") or {}
        if str(prov.get("git", "")).endswith("-dirty"):
            assert prov.get("git_dirty_files") or prov.get("git_dirty_note"), meta_path


def test_pack_rewrites_paths_gzips_and_links(tmp_path, monkeypatch):
    pack = _pack()
    ref = tmp_path / "results" / "reference" / "demo"
    run = ref / "runs" / "exp" / "random-random-seed0-0123abcd"
    (run / "eval_samples").mkdir(parents=True)
    twin = ref / "runs" / "exp" / "random-random-seed1-4567cdef"
    (twin / "eval_samples").mkdir(parents=True)
    # varied enough that the gzipped file stays over the size that is worth storing once
    rows = "".join(json.dumps({"id": i, "completion": hashlib.sha256(str(i).encode()).hexdigest(), "correct": True})
                   + "\n" for i in range(2000))
    for r in (run, twin):
        (r / "eval_samples" / "final-embedded.jsonl").write_text(rows)
        (r / "subset.jsonl").write_text("{}\n")
        (r / "meta.json").write_text(json.dumps({
            "model": "/tmp/x/main/ufo_rl/assets/models/tiny-abc", "provenance": {"git": "abc-dirty"},
            "train": {"final_model_path": f"/tmp/ref/runs/exp/{r.name}/final"}}))
        (r / "config.yaml").write_text(
            f"cache_dir: /tmp/refcache\nresults_dir: /tmp/ref\nrun_dir: /tmp/ref/runs/exp/{r.name}\n")
    monkeypatch.setattr(pack, "ROOT", tmp_path)
    assert pack.main([str(ref), "--check"]) == 1
    assert pack.main([str(ref)]) == 0 and pack.main([str(ref), "--check"]) == 0
    meta = json.loads((run / "meta.json").read_text())
    assert meta["model"] == "ufo_rl/assets/models/tiny-abc" and meta["train"]["final_model_path"] == "final"
    assert meta["provenance"]["git_dirty_note"]
    cfg = (run / "config.yaml").read_text()
    assert "cache_dir: <cache>" in cfg and "results_dir: results/reference/demo" in cfg
    assert "run_dir: .\n" in cfg  # relative to the run folder itself
    assert not (run / "subset.jsonl").exists()
    gz = run / "eval_samples" / "final-embedded.jsonl.gz"
    assert pack.MIN_DEDUP <= gz.stat().st_size < len(rows) / 1.5
    # the second run's identical samples are a link to the first's, and the report reads both
    assert (twin / "eval_samples" / "final-embedded.jsonl.gz").is_symlink()
    from ufo_rl.report.runs import _read_jsonl

    assert len(_read_jsonl(twin / "eval_samples" / "final-embedded.jsonl")) == 2000
    assert pack.gzip_bytes(b"abc") == pack.gzip_bytes(b"abc")  # no time stamp


def _references() -> list[Path]:
    return sorted(p.parent for p in (ROOT / "results" / "reference").glob("*/tables") if (p.parent / "runs").is_dir())


@pytest.mark.slow
@pytest.mark.parametrize("ref", _references(), ids=lambda p: p.name)
def test_reference_tables_rebuild_unchanged(ref, tmp_path):
    """The report rebuilt from a reference's committed run folders gives its committed tables: the same
    files, rows and columns, text equal and numbers equal to 1e-9 relative (last bits may move with the CPU)."""
    from ufo_rl.report.build import build_report

    build_report(ref / "runs", tmp_path)
    committed = sorted(p.name for p in (ref / "tables").glob("*.csv"))
    rebuilt = sorted(p.name for p in (tmp_path / "tables").glob("*.csv"))
    assert rebuilt == committed
    for name in committed:
        a = pd.read_csv(ref / "tables" / name)
        b = pd.read_csv(tmp_path / "tables" / name)
        assert list(a.columns) == list(b.columns) and a.shape == b.shape, name
        if name == "runs.csv":  # the run folder's path, as the report was pointed at it
            a, b = a.drop(columns="run"), b.drop(columns="run")
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-12, obj=f"{ref.name}/{name}")
