"""Problem loaders: the embedded generator, local files mapped by config, the hub, and bad input."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path

import pytest

from ufo_rl.config import DatasetConfig
from ufo_rl.data.loaders import EXTRACTIONS, KINDS, load_problems
from ufo_rl.errors import UserError
from ufo_rl.problems import Problem

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def jsonl_cfg(path: Path, **kw) -> DatasetConfig:
    return DatasetConfig(kind="jsonl", name="mine", path=str(path), **kw)


# --------------------------------------------------------------------------- embedded


def test_embedded_default_sizes_levels_and_disjoint_splits():
    pool = load_problems(DatasetConfig())
    test = load_problems(DatasetConfig(split="test"))
    assert (len(pool), len(test)) == (2000, 500)
    assert not {p.question for p in pool} & {p.question for p in test}
    assert not {p.id for p in pool} & {p.id for p in test}
    assert len({p.difficulty for p in pool}) >= 5
    assert {p.difficulty for p in test} == {p.difficulty for p in pool}
    # answers are what the worked solution ends with
    assert all(p.solution.endswith(f"<answer>{p.answer}</answer>") for p in pool[:50])


def test_embedded_is_deterministic_in_seed():
    a = load_problems(DatasetConfig(n_pool=50, n_test=20))
    b = load_problems(DatasetConfig(n_pool=50, n_test=20))
    c = load_problems(DatasetConfig(n_pool=50, n_test=20, seed=1))
    assert a == b
    assert [p.question for p in a] != [p.question for p in c]


def test_embedded_yaml_is_the_default_pool(dataset_config):
    cfg = dataset_config("embedded")
    assert cfg == DatasetConfig()
    assert (
        load_problems(dataclasses.replace(cfg, levels=[2, 5], n_pool=40, limit=10))
        == (load_problems(dataclasses.replace(cfg, levels=[2, 5], n_pool=40))[:10])
    )
    assert {
        p.difficulty for p in load_problems(dataclasses.replace(cfg, levels=[2, 5], n_pool=40))
    } == {2, 5}


def test_embedded_unknown_split():
    with pytest.raises(UserError, match=r"unknown embedded split 'train'; known: pool, test"):
        load_problems(DatasetConfig(split="train", n_pool=10, n_test=10))


# --------------------------------------------------------------------------- local files


ROWS = [
    {"problem": "What is 20+3?", "ans": 23.0, "sol": "20+3=23", "uid": "a", "level": "Level 3"},
    {"problem": "What is 2*2?", "ans": 4, "sol": None, "uid": "b", "level": 2},
    {
        "problem": "Half of one?",
        "ans": "\\frac{1}{2}",
        "sol": "1/2",
        "uid": "c",
        "level": "Level ?",
    },
]
MAPPING = {
    "question_field": "problem",
    "answer_field": "ans",
    "solution_field": "sol",
    "id_field": "uid",
    "difficulty_field": "level",
}
EXPECTED = [
    Problem("a", "What is 20+3?", "23", "20+3=23", 3, "mine"),
    Problem("b", "What is 2*2?", "4", None, 2, "mine"),
    Problem("c", "Half of one?", "\\frac{1}{2}", "1/2", None, "mine"),
]


def test_jsonl_mapped_by_config_alone(tmp_path):
    path = write_jsonl(tmp_path / "my.jsonl", ROWS)
    path.write_text(path.read_text() + "\n   \n")  # trailing blank lines are not rows
    assert load_problems(jsonl_cfg(path, **MAPPING)) == EXPECTED
    assert load_problems(jsonl_cfg(path, **MAPPING, limit=2)) == EXPECTED[:2]


def test_jsonl_default_ids_and_fields(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"question": "q1", "answer": "1"}, {"question": "q2", "answer": 2}]
    )
    got = load_problems(jsonl_cfg(path))
    assert [(p.id, p.answer, p.solution, p.difficulty, p.source) for p in got] == [
        ("mine-0", "1", None, None, "mine"),
        ("mine-1", "2", None, None, "mine"),
    ]


def test_parquet_mapped_by_config_alone(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [dict(r, level=str(r["level"]), ans=str(r["ans"])) for r in ROWS]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "my.parquet")
    cfg = DatasetConfig(kind="parquet", name="mine", path=str(tmp_path / "my.parquet"), **MAPPING)
    got = load_problems(cfg)
    assert [p.id for p in got] == ["a", "b", "c"]
    assert [p.answer for p in got] == ["23.0", "4", "\\frac{1}{2}"]  # strings kept as written
    assert [p.difficulty for p in got] == [3, 2, None]
    assert got[1].solution is None


@pytest.mark.parametrize(
    "extraction, answer, gold, solution",
    [
        ("field", 23.0, "23", None),
        ("field", " 1/2 ", "1/2", None),
        ("gsm8k", "3 * 4 = <<3*4=12>>12\n#### 1,212", "1212", "3 * 4 = <<3*4=12>>12\n#### 1,212"),
        (
            "boxed",
            "so \\boxed{1} then \\boxed{\\frac{1}{2}}.",
            "\\frac{1}{2}",
            "so \\boxed{1} then \\boxed{\\frac{1}{2}}.",
        ),
        ("number", "she has 1,024 apples and 3 pears", "3", "she has 1,024 apples and 3 pears"),
        ("number", "total: 1,024", "1024", "total: 1,024"),
    ],
)
def test_answer_extraction(tmp_path, extraction, answer, gold, solution):
    path = write_jsonl(tmp_path / "x.jsonl", [{"question": "q", "answer": answer}])
    (p,) = load_problems(jsonl_cfg(path, answer_extraction=extraction))
    assert (p.answer, p.solution) == (gold, solution)


def test_solution_field_wins_over_the_answer_text(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"question": "q", "answer": "#### 5", "why": "w"}])
    (p,) = load_problems(jsonl_cfg(path, answer_extraction="gsm8k", solution_field="why"))
    assert (p.answer, p.solution) == ("5", "w")


# --------------------------------------------------------------------------- hub


def fake_datasets(monkeypatch, rows=None, error: Exception | None = None) -> list:
    """Replace the ``datasets`` module: record load_dataset calls, return rows or raise."""
    calls = []

    def load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        if error is not None:
            raise error
        return rows

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_hub_calls_load_dataset_with_name_config_and_split(monkeypatch, dataset_config):
    rows = [{"question": "q1", "answer": "a\n#### 7"}, {"question": "q2", "answer": "#### 8"}]
    calls = fake_datasets(monkeypatch, rows)
    got = load_problems(dataset_config("gsm8k_test"))
    assert calls == [("openai/gsm8k", "main", "test")]
    assert [(p.id, p.answer, p.source) for p in got] == [
        ("gsm8k_test-0", "7", "gsm8k_test"),
        ("gsm8k_test-1", "8", "gsm8k_test"),
    ]


def test_hub_offline_says_to_use_a_local_file(monkeypatch, dataset_config):
    fake_datasets(
        monkeypatch, error=ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub\nmore")
    )
    with pytest.raises(UserError) as e:
        load_problems(dataset_config("gsm8k"))
    msg = str(e.value)
    assert "\n" not in msg
    assert "openai/gsm8k" in msg and "ConnectionError" in msg
    assert "dataset.kind=jsonl" in msg and "dataset.path" in msg


# --------------------------------------------------------------------------- the shipped configs


@pytest.mark.parametrize(
    "path", sorted((CONF_DIR / "dataset").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_dataset_yaml_fits_the_schema(path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(DatasetConfig), OmegaConf.load(path))
    )
    if cfg.kind in ("jsonl", "parquet"):  # the generic files leave the path to the user
        with pytest.raises(UserError, match="dataset.path is not set"):
            load_problems(cfg)
    assert cfg.name == path.stem  # one name everywhere: file, dataset name, results column
    assert cfg.kind in KINDS and cfg.answer_extraction in EXTRACTIONS
    if cfg.kind == "hub":
        assert cfg.path and "/" in cfg.path and cfg.split in ("train", "test")


SHARED_COUNTS = {"gsm8k": 7473, "gsm8k_test": 1319, "math500": 500, "aime24": 30, "amc23": 40}


@pytest.mark.parametrize("name", list(SHARED_COUNTS))
def test_shared_benchmark_loads_through_its_config(name, shared_problems):
    problems = shared_problems(name)
    assert len(problems) == SHARED_COUNTS[name]
    assert all(p.source == name and p.question.strip() and p.answer.strip() for p in problems)


def test_shared_benchmarks_field_details(shared_problems):
    gsm = shared_problems("gsm8k")[0]
    assert (gsm.id, gsm.answer) == ("gsm8k-0", "72") and gsm.solution.rstrip().endswith("#### 72")
    assert gsm.question.startswith("Natalia sold clips")
    big = [p for p in shared_problems("gsm8k_test") if "," in p.solution.rsplit("####", 1)[1]]
    assert big and all("," not in p.answer for p in big)  # "#### 1,234" -> "1234"
    m = shared_problems("math500")
    assert m[0].id == "test/precalculus/807.json" and m[0].answer.startswith("\\left( 3,")
    assert {p.difficulty for p in m} == {1, 2, 3, 4, 5} and all(p.solution for p in m)
    aime = shared_problems("aime24")
    assert (aime[0].id, aime[0].answer) == ("60", "204") and aime[0].solution
    amc = shared_problems("amc23")
    assert (amc[0].id, amc[0].answer, amc[0].solution) == ("0", "27", None)  # 27.0 -> "27"
    assert all("." not in p.answer for p in amc)


def test_eval_math_local_composes_and_loads(shared_data, monkeypatch):
    from hydra import compose, initialize_config_dir

    from ufo_rl.config import register_configs, to_run_config

    monkeypatch.setenv("UFO_RL_DATA_DIR", str(shared_data))
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        overrides = [
            "eval=math_local",
            "run_dir=unused",
            "dataset=gsm8k",
            "dataset.kind=jsonl",
            f"dataset.path={shared_data / 'gsm8k/train.jsonl'}",
            "dataset.limit=100",
        ]
        rc = to_run_config(compose(config_name="config", overrides=overrides))
    assert sorted(rc.eval.benchmarks) == ["aime24", "amc23", "gsm8k_test", "math500"]
    assert len(load_problems(rc.dataset)) == 100
    for name, bench in rc.eval.benchmarks.items():
        assert bench.name == name and bench.kind == "jsonl"
        assert len(load_problems(bench)) == SHARED_COUNTS[name]


def test_eval_default_embedded_benchmark_follows_the_pool():
    from hydra import compose, initialize_config_dir

    from ufo_rl.config import register_configs, to_run_config

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        overrides = [
            "run_dir=unused",
            "dataset=embedded",
            "dataset.seed=3",
            "dataset.n_pool=60",
            "dataset.n_test=30",
            "dataset.levels=[1,4]",
        ]
        rc = to_run_config(compose(config_name="config", overrides=overrides))
    (bench,) = rc.eval.benchmarks.values()
    assert (bench.kind, bench.split, bench.seed, bench.n_test, bench.levels) == (
        "embedded",
        "test",
        3,
        30,
        [1, 4],
    )
    pool, test = load_problems(rc.dataset), load_problems(bench)
    assert (len(pool), len(test)) == (60, 30)
    assert not {p.question for p in pool} & {p.question for p in test}


# --------------------------------------------------------------------------- bad input


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(tmp_path / "nope.jsonl"))
    msg = one_line(e)
    assert "file not found" in msg and "nope.jsonl" in msg and "set dataset.path" in msg


def test_path_not_set():
    with pytest.raises(UserError) as e:
        load_problems(DatasetConfig(kind="parquet"))
    assert "dataset.path is not set" in one_line(e)


def test_malformed_json_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q", "answer": "1"}\n\n{"question": "q2", "answer": \n')
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path))
    msg = one_line(e)
    assert "bad.jsonl line 3" in msg and "malformed JSON" in msg


def test_json_line_not_an_object(tmp_path):
    path = write_jsonl(tmp_path / "list.jsonl", [["q", "a"]])
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path))
    assert "list.jsonl line 1: expected a JSON object, got list" in one_line(e)


@pytest.mark.parametrize(
    "key, value",
    [
        ("question_field", "problem"),
        ("answer_field", "solution"),
        ("solution_field", "worked"),
        ("id_field", "uid"),
        ("difficulty_field", "level"),
    ],
)
def test_missing_field_names_file_line_field_and_key(tmp_path, key, value):
    rows = [{"question": "q1", "answer": "1"}, {"question": "q2", "answer": "2"}]
    if key != "question_field":
        rows[0][value] = "present on line 1 only"  # the error is on line 2
        if key == "answer_field":
            rows[0][value] = "5"
    path = write_jsonl(tmp_path / "data.jsonl", rows)
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path, **{key: value}))
    msg = one_line(e)
    line = 1 if key == "question_field" else 2
    assert f"data.jsonl line {line}: missing field '{value}' (set dataset.{key};" in msg
    assert "fields present: answer, question" in msg


def test_missing_field_in_parquet_names_the_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"q": "x", "answer": "1"}]), tmp_path / "t.parquet")
    with pytest.raises(UserError) as e:
        load_problems(DatasetConfig(kind="parquet", path=str(tmp_path / "t.parquet")))
    assert "t.parquet row 0: missing field 'question' (set dataset.question_field" in one_line(e)


def test_unreadable_parquet(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text("not parquet")
    with pytest.raises(UserError) as e:
        load_problems(DatasetConfig(kind="parquet", path=str(path)))
    assert "not a readable parquet file" in one_line(e)


def test_gold_answer_not_extractable(tmp_path):
    path = write_jsonl(
        tmp_path / "g.jsonl",
        [{"question": "q", "answer": "#### 3"}, {"question": "q", "answer": "no mark"}],
    )
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path, answer_extraction="gsm8k"))
    msg = one_line(e)
    assert "g.jsonl line 2: field 'answer' has no '#### <answer>' line" in msg
    assert "answer_extraction=gsm8k" in msg and "set dataset.answer_extraction" in msg


def test_empty_dataset(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path))
    assert "mine: the dataset is empty" in one_line(e)


def test_empty_answer_after_extraction(tmp_path):
    path = write_jsonl(tmp_path / "e.jsonl", [{"question": "q", "answer": "  "}])
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path))
    assert "empty answer" in one_line(e)


def test_duplicate_ids(tmp_path):
    path = write_jsonl(
        tmp_path / "dup.jsonl",
        [{"question": f"q{i}", "answer": "1", "id": i % 2} for i in range(4)],
    )
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path, id_field="id"))
    msg = one_line(e)
    assert "duplicate ids" in msg and "dataset.id_field" in msg


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(UserError) as e:
        load_problems(DatasetConfig(kind="csv"))
    assert "unknown dataset.kind 'csv'; known: embedded, jsonl, parquet, hub" in one_line(e)


def test_unknown_extraction_lists_the_known_ones():
    with pytest.raises(UserError) as e:
        load_problems(DatasetConfig(kind="jsonl", path="x", answer_extraction="latex"))
    assert (
        "unknown dataset.answer_extraction 'latex'; known: field, gsm8k, boxed, number"
        in one_line(e)
    )


@pytest.mark.parametrize(
    "limit, needle", [(0, "keeps no rows"), (-3, "keeps no rows"), (4, "more than the 3 rows")]
)
def test_out_of_range_limit(tmp_path, limit, needle):
    path = write_jsonl(
        tmp_path / "three.jsonl", [{"question": f"q{i}", "answer": "1"} for i in range(3)]
    )
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path, limit=limit))
    msg = one_line(e)
    assert f"dataset.limit={limit}" in msg and needle in msg


def test_out_of_range_limit_embedded():
    with pytest.raises(UserError, match="more than the 10 rows"):
        load_problems(DatasetConfig(n_pool=10, n_test=10, limit=11))
