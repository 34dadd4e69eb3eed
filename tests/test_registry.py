"""The scorer registry (``ufo_rl/scorers.py``) is the one source of selector facts.

- A scorer registered by one module (here: in this file) is labelled by the pipeline from its
  registry entry and appears in every table of the report, which knows no selector by name.
- The baselines are a plug-in found through the entry points ``ufo_rl.scorers``, installed as the
  package ``ufo_rl_baselines``: importing the registry imports no module named ``baselines``.
- The registry agrees with the YAML files of ``conf/selector/``, and the library has no import
  cycle.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from ufo_rl.config import DatasetConfig, RunConfig, SelectorConfig
from ufo_rl.report import TABLES, build_report, load_runs
from ufo_rl.scorers import SCORERS, Knob, ScoreChunk, baselines, empty_columns, get_scorer, register_scorer, scorers

ROOT = Path(__file__).resolve().parents[1]
N, K = 200, 4  # the dummy samples K=4 (the baseline multisample: 8), so its rows are told apart by k
DUMMY = "coinflip"


def coinflip_rates(ids) -> list[float]:
    """A fixed pass rate j/K per problem id, standing in for K sampled completions."""
    return [(sum(map(ord, str(i))) * 7 % (K + 1)) / K for i in ids]


@pytest.fixture
def dummy():
    """A selector added the way a new one is: a module that registers one scoring function."""

    @register_scorer(DUMMY, needs_model=False, signal="pass_rate", samples=True, key_fields=("k",),
                     knobs={"k": Knob(K, "k{}")})
    def score_coinflip(ctx, problems) -> ScoreChunk:
        cols = empty_columns(len(problems))
        cols.update(pass_rate=coinflip_rates([p.id for p in problems]), n_samples=[ctx.cfg.k] * len(problems))
        return ScoreChunk(cols, seconds=1.0)

    yield get_scorer(DUMMY)
    SCORERS.pop(DUMMY)


# ---- the plug-in and the names -------------------------------------------------------------------

def test_registry_imports_no_package_named_baselines_and_has_every_name(tmp_path):
    code = ("import json, sys; import ufo_rl.scorers as s; names = sorted(s.scorers()); "
            "print(json.dumps({'names': names, 'plugins': s.PLUGINS, "
            "'mods': sorted(m for m in sys.modules if m.split('.')[0] in ('baselines', 'ufo_rl_baselines')), "
            "'origin': {n: s.get_scorer(n).fn.__module__ for n in names}}))")
    # run outside the repository, so that the folder baselines/ cannot be found by accident
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["names"] == ["full", "multisample", "random", "ufo", "ufo_calibrated"]
    assert out["plugins"] == ["baselines = ufo_rl_baselines"]
    assert not [m for m in out["mods"] if m.split(".")[0] == "baselines"], out["mods"]
    assert {out["origin"][n] for n in ("full", "multisample", "random")} == {
        "ufo_rl_baselines.full", "ufo_rl_baselines.multisample", "ufo_rl_baselines.random_subset"}


def test_pyproject_installs_every_package_and_the_plugin():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    st = conf["tool"]["setuptools"]
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ufo_rl").rglob("__init__.py")}
    assert found | {"ufo_rl_baselines"} == set(st["packages"])
    assert st["package-dir"] == {"ufo_rl_baselines": "baselines"}
    assert conf["project"]["entry-points"]["ufo_rl.scorers"] == {"baselines": "ufo_rl_baselines"}


def test_a_name_taken_by_another_function_is_an_error(dummy):
    from ufo_rl.errors import UserError

    with pytest.raises(UserError, match="registered twice"):
        register_scorer(DUMMY)(lambda ctx, problems: None)


def test_registry_agrees_with_the_selector_yaml_files():
    """Each registered name has conf/selector/<name>.yaml, whose rule, fraction and knob values
    are the registry's defaults (the label names what differs from them)."""
    names = set(scorers())
    for name in names:
        node = OmegaConf.merge(OmegaConf.structured(SelectorConfig),
                               OmegaConf.load(ROOT / "conf" / "selector" / f"{name}.yaml"))
        cfg, s = OmegaConf.to_object(node), get_scorer(name)
        assert cfg.name == name and cfg.rule == s.rule and cfg.fraction == pytest.approx(s.fraction), name
        assert s.label(cfg.rule, cfg.signal or s.signal, cfg.fraction, vars(cfg)) == name
        for key, knob in s.knobs.items():
            assert getattr(cfg, key) == knob.default, (name, key)
            assert not knob.choices or knob.default in knob.choices
    assert baselines() == ["random", "full"]


# ---- no import cycles ----------------------------------------------------------------------------

def module_imports(toplevel_only: bool) -> dict[str, set[str]]:
    """Import graph of ufo_rl and the baselines (as ``ufo_rl_baselines``), from the source: module
    -> the project modules it imports (edges to its own parent packages left out)."""
    files = {}
    for pkg, folder in (("ufo_rl", ROOT / "ufo_rl"), ("ufo_rl_baselines", ROOT / "baselines")):
        for path in folder.rglob("*.py"):
            parts = [pkg, *path.relative_to(folder).with_suffix("").parts]
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in tree.body if toplevel_only else ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names)
        graph[name] = set()
        for t in targets:
            while t and t not in files:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                graph[name].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
                on.discard(comp[-1])
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_and_the_library_never_imports_the_plugin():
    assert cycles(module_imports(toplevel_only=True)) == []
    everything = module_imports(toplevel_only=False)  # function-level imports too
    # a cycle through imports made inside functions works only until one of them moves to the top
    assert "ufo_rl.scorers" in everything["ufo_rl.identity"]  # job_name imports it inside
    assert cycles(everything) == []
    # the schema is the leaf every module may import; the Hydra glue that needs the rest of the
    # project lives in ufo_rl/hydra_conf.py
    assert everything["ufo_rl.config"] == set()
    assert not any(t.startswith("ufo_rl_baselines") for m, ts in everything.items() if m.startswith("ufo_rl.")
                   for t in ts)
    cyc = cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert cyc == [["a", "b", "c"]]  # the check itself finds a cycle


# ---- the pipeline labels from the registry, the report shows every selector ----------------------

def test_the_pipeline_writes_the_registry_label(tmp_path, dummy):
    from ufo_rl.pipeline import Job

    cfg = RunConfig(dataset=DatasetConfig(kind="embedded", n_pool=60, n_test=10),
                    selector=SelectorConfig(name=DUMMY, k=6, fraction=0.2), stage="select", seed=0,
                    cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "runs" / "one"), progress=False)
    meta = Job(cfg).run()
    assert meta["variant"] == f"{DUMMY}-k6-20%" == dummy.label("top_mid", "pass_rate", 0.2, {"k": 6})
    scores = pd.read_parquet(tmp_path / "runs" / "one" / "scores.parquet")
    assert scores["pass_rate"].tolist() == coinflip_rates(scores["id"])
    assert [r.variant for r in load_runs(tmp_path / "runs")] == [f"{DUMMY}-k6-20%"]


def pool() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ids = [f"q{i:03d}" for i in range(N)]
    rates = np.asarray(coinflip_rates(ids))
    return pd.DataFrame({"id": ids, "difficulty": pd.array(rng.integers(1, 4, N), dtype="Int64"),
                         "confidence": np.clip(rates + rng.normal(0, 0.2, N), 0.01, 1), "pass_rate": rates})


def write_run(root: Path, selector: str, signal: str | None, *, rule: str = "top_mid", final: float = 0.5,
              seconds: float = 0.0, bin_index: int = 0, variant: str | None = None, seed: int = 0) -> Path:
    """A finished run folder of the contract (results/README.md): ``signal`` is the column its
    scores hold; ``variant`` is written into meta.json when given (the pipeline does), else the
    report labels the run from the registry."""
    d = root / "exp" / f"{selector}-{rule}{bin_index}-seed{seed}"
    d.mkdir(parents=True)
    p = pool()
    s = p[signal].to_numpy() if signal else np.zeros(N)
    if rule == "all":
        keep = np.ones(N, dtype=bool)
    elif rule == "bin":
        keep = np.zeros(N, dtype=bool)
        keep[np.argsort(s, kind="stable")[bin_index * 20:(bin_index + 1) * 20]] = True
    else:
        keep = np.zeros(N, dtype=bool)
        keep[np.argsort(np.abs(s - s.mean()), kind="stable")[:20]] = True
    cols = {c: None for c in ("logprob_mean", "confidence", "pass_rate", "n_samples")}
    if signal:
        cols[signal] = p[signal]
    if signal == "pass_rate":
        cols["n_samples"] = K
    pd.DataFrame({"id": p["id"], **cols, "selected": keep, "difficulty": p["difficulty"],
                  "selector": selector}).to_parquet(d / "scores.parquet", index=False)
    cfg = {"name": selector, "fraction": 0.1, "rule": rule, "target": "answer", "k": K, "n_bins": 10,
           "bin_index": bin_index, "signal": None}
    fraction = 1.0 if rule == "all" else 0.1
    (d / "scoring.json").write_text(json.dumps({
        "method": selector, "scoring_seconds": seconds, "n_prompts": N if seconds else 0,
        "cache_key": f"key-{selector}", "device": "cpu", "model": "/m/tiny", "model_fingerprint": "mfp",
        "dataset": "embedded", "dataset_fingerprint": "dfp", "rule": rule, "signal": signal, "fraction": fraction,
        "n_selected": int(keep.sum()), "selector_config": cfg}))
    bench = {"n": 100, "k": 4}
    (d / "eval.json").write_text(json.dumps({
        "before": {"test": {**bench, "accuracy": 0.40}}, "final": {"test": {**bench, "accuracy": final}},
        "best": {"test": {**bench, "accuracy": final}}, "best_step": 10, "final_step": 10, "curve": []}))
    (d / "timing.json").write_text(json.dumps({"scoring_seconds": seconds, "training_seconds": 100.0 + final}))
    (d / "train.jsonl").write_text("".join(json.dumps({"step": i, "reward_mean": 0.3}) + "\n" for i in range(1, 11)))
    meta = {"experiment": "exp", "selector": selector, "seed": seed, "rule": rule, "fraction": fraction,
            "n_pool": N, "n_selected": int(keep.sum()), "budget": "steps", "stage": "all", "model": "/m/tiny",
            "dataset": "embedded", "train": {"steps": 10}, "status": "done"}
    if variant:
        meta["variant"] = variant
    (d / "meta.json").write_text(json.dumps(meta))
    return d


def test_a_registered_scorer_appears_in_every_table(tmp_path, dummy):
    root = tmp_path / "runs"
    write_run(root, "ufo", "confidence", seconds=2.0, final=0.6)
    write_run(root, DUMMY, "pass_rate", seconds=8.0, final=0.55, variant=DUMMY)  # labelled by the pipeline
    write_run(root, DUMMY, "pass_rate", rule="bin", bin_index=1, final=0.45)  # labelled by the registry
    write_run(root, "random", None, rule="random", final=0.5)
    write_run(root, "full", None, rule="all", final=0.52)
    out = tmp_path / "out"
    build_report(root, out)
    tables = {name: pd.read_csv(out / "tables" / f"{name}.csv") for name in TABLES}
    for name, df in tables.items():
        if name in ("pass_rate_distribution", "pass_rate_bins"):
            assert (df["k"] == K).all() and len(df), name  # the pools of the dummy's pass rates (K=4)
        else:
            assert df.astype(str).isin([DUMMY, f"{DUMMY}-bin1"]).any(axis=None), name

    cost = tables["scoring_cost"].set_index("method")
    assert cost.loc["ufo", "speedup"] == pytest.approx(8.0 / 2.0)  # the dummy samples: it is the reference
    assert cost.loc[DUMMY, "k"] == K and cost.loc["ufo", "multisample_k"] == K
    assert cost.loc["ufo", "target"] == "answer" and np.isnan(cost.loc[DUMMY, "target"])
    diff = tables["differences"]
    assert set(diff.loc[diff["variant"] == DUMMY, "baseline"]) == {"random", "full"}
    tt = tables["training_time"].set_index("variant")
    assert tt.loc[DUMMY, "training_speedup_vs_full"] == pytest.approx(100.52 / 100.55)
    assert set(tables["correlation"]["multisample"]) == {DUMMY, f"{DUMMY}-bin1"}
    assert set(tables["bin_ablation"]["selector"]) == {DUMMY}
    assert sorted(pd.read_csv(out / "tables" / "runs.csv")["variant"]) == sorted(
        ["ufo", DUMMY, f"{DUMMY}-bin1", "random", "full"])
