"""Problem loaders: the embedded generator, local files mapped by config, the hub, and bad input."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path

import pytest

from ufo_rl.config import DatasetConfig
from ufo_rl.data.loaders import (
    EXTRACTIONS,
    KINDS,
    ON_BAD_ANSWER,
    BadAnswerError,
    check_dataset_config,
    load_problems,
    load_problems_with_report,
)
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


@pytest.mark.parametrize(
    "answer, gold",
    [
        ("#### 1,234", "1234"),
        ("Natalia sold 48/2 = <<48/2=24>>24 clips.", "24"),  # GSM8K's calculator annotation
        ("so she pays 5/2 dollars", "5/2"),  # a fraction is kept as p/q
        ("-(1/3)", "-1/3"),
        ("\\frac{5}{2}", "5/2"),
        ("\\dfrac{-5}{2}", "-5/2"),
        ("the answer is $\\boxed{\\frac{1}{3}}$.", "1/3"),
        ("2.5e3", "2500"),  # e-notation is written out exactly
        ("about 4.5 \\times 10^{-3} grams", "0.0045"),
        ("x = 5", "5"),
        ("Answer: -7", "-7"),
        ("**Answer:** 42", "42"),
        ("90^\\circ", "90"),
        ("\\$32,\\!348", "32348"),
        ("the 3 pears weigh 500kg", "500"),
    ],
)
def test_number_extraction_reads_one_plain_number(tmp_path, answer, gold):
    path = write_jsonl(tmp_path / "x.jsonl", [{"question": "q", "answer": answer}])
    (p,) = load_problems(jsonl_cfg(path, answer_extraction="number"))
    assert (p.answer, p.solution) == (gold, answer)


@pytest.mark.parametrize(
    "answer, why",
    [
        ("Home by 12:50", "the last number '50' in 'Home by 12:50' is part of a time or ratio"),
        ("mixed 3:2", "is part of a time or ratio"),
        ("3, 5, 7", "is one of a list of numbers"),
        ("1,23", "is one of a list of numbers"),
        ("(2, \\infty)", "is one of a list"),
        ("6 - 5i", "follows '-'"),
        ("2\\sqrt{2}", "is inside '\\sqrt{...}'"),
        ("x^{2}", "is inside a LaTeX group"),
        ("52_8", "follows '_'"),
        ("1/2/2020", "follows '/'"),
        ("137 \\frac{1}{2}", "follows another number"),
        ("5i", "is glued to a letter"),
        ("3 \\pi", "is followed by '\\pi'"),
        ("5x + 4 = 0", "is the right side of an equation in variables"),
        ("it is 5!", "is followed by '!'"),
        ("5/0", "divides by zero"),
        ("1e5000", "has too large an exponent"),
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "is one of a list of numbers"),
    ],
)
def test_number_extraction_refuses_what_is_not_one_plain_number(tmp_path, answer, why):
    path = write_jsonl(tmp_path / "x.jsonl", [{"question": "q", "answer": "7"}, {"question": "q", "answer": answer}])
    with pytest.raises(BadAnswerError) as e:
        load_problems(jsonl_cfg(path, answer_extraction="number"))
    msg = one_line(e)
    assert f"mine: {path} line 2: field 'answer': the last number" in msg
    assert why in msg and "not one plain number" in msg
    assert "answer_extraction=number takes the last number only when it stands alone" in msg
    assert "dataset.on_bad_answer=skip" in msg
    problems, report = load_problems_with_report(jsonl_cfg(path, answer_extraction="number", on_bad_answer="skip"))
    assert [p.answer for p in problems] == ["7"]
    assert report == {"skipped_bad_answer": 1, "skipped_first": [f"{path} line 2"]}


def test_number_extraction_skips_and_counts(tmp_path, capsys):
    rows = [{"question": "q", "answer": a} for a in ("1", "12:50", "5/2", "no number", "3:2", "2.5e3")]
    path = write_jsonl(tmp_path / "n.jsonl", rows)
    problems, report = load_problems_with_report(jsonl_cfg(path, answer_extraction="number", on_bad_answer="skip"))
    assert [(p.id, p.answer) for p in problems] == [("mine-0", "1"), ("mine-2", "5/2"), ("mine-5", "2500")]
    assert report == {"skipped_bad_answer": 3, "skipped_first": [f"{path} line {n}" for n in (2, 4, 5)]}
    err = capsys.readouterr().err
    assert "mine: skipped 3 rows" in err and "is part of a time or ratio" in err


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
        with pytest.raises(UserError, match="dataset.path is not set"):
            check_dataset_config(cfg)
    else:
        check_dataset_config(cfg)  # the config alone: no file, no hub access
    assert cfg.name == path.stem  # one name everywhere: file, dataset name, results column
    assert cfg.kind in KINDS and cfg.answer_extraction in EXTRACTIONS
    assert cfg.on_bad_answer in ON_BAD_ANSWER and cfg.question_template is None
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

    from ufo_rl.hydra_conf import register_configs, to_run_config

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

    from ufo_rl.hydra_conf import register_configs, to_run_config

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


@pytest.mark.parametrize("content", ["", "\n  \n"])
def test_empty_dataset_names_the_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path))
    assert f"mine: {path} holds no rows; give a file with one JSON object per line" in one_line(e)


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


# --------------------------------------------------------------------------- values that are not answers


def parquet_cfg(path: Path, **kw) -> DatasetConfig:
    return DatasetConfig(kind="parquet", name="mine", path=str(path), **kw)


def write_parquet(path: Path, rows: list) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


NOT_ANSWERS = [
    (float("nan"), "is NaN"),
    (float("inf"), "is Infinity"),
    (float("-inf"), "is -Infinity"),
    (True, "is a boolean (true)"),
    (False, "is a boolean (false)"),
    (None, "is null"),
    (["1", "2"], "holds a list"),
]


@pytest.mark.parametrize("value, why", NOT_ANSWERS)
def test_not_an_answer_in_jsonl(tmp_path, value, why):
    # json.dumps writes NaN / Infinity / -Infinity, the tokens Python's json reads back
    path = write_jsonl(
        tmp_path / "v.jsonl", [{"question": "q", "answer": "1"}, {"question": "q", "answer": value}]
    )
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path))
    msg = one_line(e)
    assert f"v.jsonl line 2: field 'answer' {why}" in msg
    assert "missing field" not in msg and "dataset.on_bad_answer=skip" in msg


@pytest.mark.parametrize("value, why", NOT_ANSWERS)
def test_not_a_question_in_jsonl(tmp_path, value, why):
    path = write_jsonl(tmp_path / "v.jsonl", [{"question": value, "answer": "1"}])
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path))
    msg = one_line(e)
    assert f"v.jsonl line 1: field 'question' {why}" in msg and "missing field" not in msg


@pytest.mark.parametrize("token, why", [("NaN", "is NaN"), ("Infinity", "is Infinity"),
                                        ("-Infinity", "is -Infinity"), ("null", "is null"),
                                        ("true", "is a boolean (true)")])
def test_json_tokens_as_written_in_the_file(tmp_path, token, why):
    path = tmp_path / "t.jsonl"
    path.write_text(f'{{"question": "q", "answer": {token}}}\n')
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path, answer_extraction="number"))
    assert f"t.jsonl line 1: field 'answer' {why}" in one_line(e)


@pytest.mark.parametrize(
    "value, gold", [(43.0, "43"), (7, "7"), (2.5, "2.5"), (-0.125, "-0.125"), (1e-7, "0.0000001"),
                    (1e20, "100000000000000000000")]
)
@pytest.mark.parametrize("extraction", ["field", "number", "gsm8k", "boxed"])
def test_numeric_gold_is_a_number_under_every_extraction(tmp_path, value, gold, extraction):
    path = write_jsonl(tmp_path / "n.jsonl", [{"question": "q", "answer": value}])
    (p,) = load_problems(jsonl_cfg(path, answer_extraction=extraction))
    assert (p.answer, p.solution) == (gold, None)


def test_numeric_question_and_id_are_written_as_numbers(tmp_path):
    path = write_jsonl(tmp_path / "n.jsonl", [{"question": 12.0, "answer": "1", "id": 3.0}])
    (p,) = load_problems(jsonl_cfg(path, id_field="id"))
    assert (p.question, p.id) == ("12", "3")


@pytest.mark.parametrize("value, why", [(float("nan"), "is NaN"), (None, "is null"),
                                        (True, "is a boolean (true)")])
def test_id_that_is_not_a_value(tmp_path, value, why):
    path = write_jsonl(tmp_path / "i.jsonl", [{"question": "q", "answer": "1", "id": value}])
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path, id_field="id"))
    assert f"i.jsonl line 1: field 'id' {why}" in one_line(e)


def test_nan_solution_is_a_missing_solution(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"question": "q", "answer": "1", "s": float("nan")}])
    (p,) = load_problems(jsonl_cfg(path, solution_field="s"))
    assert p.solution is None


@pytest.mark.parametrize(
    "column, why",
    [([1.0, float("nan")], "is NaN"), ([1.0, float("inf")], "is Infinity"),
     (["1", None], "is null"), ([True, False], "is a boolean (false)")],
)
def test_not_an_answer_in_parquet(tmp_path, column, why):
    path = write_parquet(
        tmp_path / "v.parquet", [{"question": "q", "answer": a} for a in column]
    )
    if why.startswith("is a boolean"):
        why, row = "is a boolean (true)", 0
    else:
        row = 1
    with pytest.raises(UserError) as e:
        load_problems(parquet_cfg(path))
    assert f"v.parquet row {row}: field 'answer' {why}" in one_line(e)


def test_numeric_gold_in_parquet(tmp_path):
    path = write_parquet(tmp_path / "n.parquet", [{"question": "q", "answer": a} for a in
                                                  (43.0, 2.5)])
    assert [p.answer for p in load_problems(parquet_cfg(path))] == ["43", "2.5"]


@pytest.mark.parametrize("value, why", NOT_ANSWERS[:6])
def test_not_an_answer_on_the_hub(monkeypatch, value, why):
    fake_datasets(monkeypatch, [{"question": "q", "answer": value}])
    cfg = DatasetConfig(kind="hub", name="h", path="org/set", split="train")
    with pytest.raises(UserError) as e:
        load_problems(cfg)
    assert f"org/set[train] row 0: field 'answer' {why}" in one_line(e)


def test_numeric_gold_on_the_hub(monkeypatch):
    fake_datasets(monkeypatch, [{"question": "q", "answer": 43.0}, {"question": "r", "answer": 7}])
    cfg = DatasetConfig(kind="hub", name="h", path="org/set", answer_extraction="gsm8k")
    assert [p.answer for p in load_problems(cfg)] == ["43", "7"]


# --------------------------------------------------------------------------- on_bad_answer


BAD_MIX = [
    {"question": "q0", "answer": "#### 1"},
    {"question": "q1", "answer": "no mark"},
    {"question": "q2", "answer": None},
    {"question": "q3", "answer": "#### 3"},
    {"question": "q4", "answer": float("nan")},
    {"question": "q5", "answer": True},
    {"question": "q6", "answer": "#### "},
    {"question": "q7", "answer": "also no mark"},
    {"question": "q8", "answer": "#### 8"},
]


def test_skip_drops_bad_answers_and_reports_them(tmp_path, capsys):
    path = write_jsonl(tmp_path / "mix.jsonl", BAD_MIX)
    problems, report = load_problems_with_report(
        jsonl_cfg(path, answer_extraction="gsm8k", on_bad_answer="skip")
    )
    assert [(p.id, p.answer) for p in problems] == [("mine-0", "1"), ("mine-3", "3"),
                                                    ("mine-8", "8")]
    assert report == {
        "skipped_bad_answer": 6,
        "skipped_first": [f"{path} line {n}" for n in (2, 3, 5, 6, 7)],
    }
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        f"mine: skipped 6 rows whose gold answer could not be extracted (first: {path} line 2, "
    )
    assert "line 7, ...; field 'answer' has no '#### <answer>' line)" in err
    assert load_problems(jsonl_cfg(path, answer_extraction="gsm8k", on_bad_answer="skip")) == (
        problems
    )


def test_error_is_the_default_policy(tmp_path):
    path = write_jsonl(tmp_path / "mix.jsonl", BAD_MIX)
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path, answer_extraction="gsm8k"))
    assert "mix.jsonl line 2: field 'answer' has no '#### <answer>' line" in one_line(e)


def test_empty_gold_is_a_bad_answer(tmp_path):
    path = write_jsonl(tmp_path / "e.jsonl", [{"question": "q", "answer": "#### "}])
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path, answer_extraction="gsm8k"))
    assert "e.jsonl line 1: field 'answer' gives an empty answer" in one_line(e)


def test_nothing_skipped_gives_an_empty_report(tmp_path, capsys):
    path = write_jsonl(tmp_path / "ok.jsonl", [{"question": "q", "answer": "1"}])
    _, report = load_problems_with_report(jsonl_cfg(path, on_bad_answer="skip"))
    assert report == {"skipped_bad_answer": 0, "skipped_first": []}
    _, report = load_problems_with_report(DatasetConfig(n_pool=5, n_test=5))
    assert report == {"skipped_bad_answer": 0, "skipped_first": []}
    assert capsys.readouterr().err == ""


def test_skip_everything_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"question": "q", "answer": "x"}] * 3)
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path, answer_extraction="boxed", on_bad_answer="skip"))
    msg = one_line(e)
    assert f"mine: no rows left: all 3 rows of {path} were skipped" in msg
    assert "bad.jsonl line 1" in msg and "field 'answer' has no \\boxed{...}" in msg


def test_skip_keeps_the_first_limit_good_rows(tmp_path, capsys):
    path = write_jsonl(tmp_path / "mix.jsonl", BAD_MIX)
    cfg = jsonl_cfg(path, answer_extraction="gsm8k", on_bad_answer="skip", limit=2)
    problems, report = load_problems_with_report(cfg)
    assert [p.id for p in problems] == ["mine-0", "mine-3"]
    assert report["skipped_bad_answer"] == 2  # reading stops at the limit
    with pytest.raises(UserError) as e:
        load_problems(dataclasses.replace(cfg, limit=4))
    msg = one_line(e)
    assert "dataset.limit=4 is more than the 3 rows available (6 more were skipped" in msg


def test_skip_does_not_hide_a_missing_field(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"question": "q", "answer": "1"}, {"question": "q"}])
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path, on_bad_answer="skip"))
    assert "m.jsonl line 2: missing field 'answer' (set dataset.answer_field" in one_line(e)


def test_skip_applies_to_parquet_and_hub(tmp_path, monkeypatch, capsys):
    rows = [{"question": "q0", "answer": 1.0}, {"question": "q1", "answer": float("nan")}]
    path = write_parquet(tmp_path / "m.parquet", rows)
    problems, report = load_problems_with_report(parquet_cfg(path, on_bad_answer="skip"))
    assert [p.answer for p in problems] == ["1"]
    assert report == {"skipped_bad_answer": 1, "skipped_first": [f"{path} row 1"]}
    fake_datasets(monkeypatch, rows)
    cfg = DatasetConfig(kind="hub", name="h", path="org/set", on_bad_answer="skip")
    problems, report = load_problems_with_report(cfg)
    assert report == {"skipped_bad_answer": 1, "skipped_first": ["org/set[pool] row 1"]}
    assert "h: skipped 1 row whose gold answer could not be extracted" in capsys.readouterr().err


def test_unknown_on_bad_answer(tmp_path):
    with pytest.raises(UserError) as e:
        load_problems(DatasetConfig(on_bad_answer="drop"))
    assert "unknown dataset.on_bad_answer 'drop'; known: error, skip" in one_line(e)


# --------------------------------------------------------------------------- question_template


def test_template_composes_the_question(tmp_path):
    rows = [
        {"body": "Ann has 3 apples.", "question": "How many?", "n": 2.0, "answer": "3"},
        {"body": "Bob has 4.", "question": "And Bob?", "n": 1, "answer": "4"},
    ]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    got = load_problems(jsonl_cfg(path, question_template="{body} {question} ({n}) {{x}}"))
    assert [p.question for p in got] == [
        "Ann has 3 apples. How many? (2) {x}",
        "Bob has 4. And Bob? (1) {x}",
    ]
    # question_field is not read when a template is set
    got = load_problems(jsonl_cfg(path, question_template="{body}", question_field="nope"))
    assert got[0].question == "Ann has 3 apples."


@pytest.mark.parametrize(
    "template, needle",
    [
        ("{} {question}", "positional field {}"),
        ("{0}", "positional field {0}"),
        ("{row.body}", "attribute or index access in {row.body}"),
        ("{row[0]}", "attribute or index access in {row[0]}"),
        ("{body!r}", "conversion or format spec in {body!r}"),
        ("{body:>10}", "conversion or format spec in {body:>10}"),
        ("{body", "is not a valid template"),
        ("body}", "is not a valid template"),
        ("no fields {{here}}", "names no field"),
    ],
)
def test_template_syntax_errors(tmp_path, template, needle):
    path = write_jsonl(tmp_path / "t.jsonl", [{"body": "b", "question": "q", "answer": "1"}])
    for check in (load_problems, check_dataset_config):
        with pytest.raises(UserError) as e:
            check(jsonl_cfg(path, question_template=template))
        msg = one_line(e)
        assert f"mine: dataset.question_template={template!r}" in msg and needle in msg


def test_template_with_a_newline_still_errs_in_one_line():
    with pytest.raises(UserError) as e:
        check_dataset_config(DatasetConfig(question_template="{body}\n{0}"))
    assert "positional field {0}" in one_line(e)


@pytest.mark.parametrize("value, what", [(None, "is null"), (float("nan"), "is NaN"), ("absent", "")])
def test_template_field_missing_or_null_in_a_row(tmp_path, value, what):
    second = {"question": "q", "answer": "1"}
    if value != "absent":
        second["body"] = value
    path = write_jsonl(tmp_path / "t.jsonl", [{"body": "b", "question": "q", "answer": "1"}, second])
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path, question_template="{body} {question}"))
    msg = one_line(e)
    if what:
        assert f"t.jsonl line 2: field 'body' named in dataset.question_template {what}" in msg
    else:
        assert "t.jsonl line 2: missing field 'body' named in dataset.question_template" in msg
        assert "fields present: answer, question" in msg


def test_template_on_parquet(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", [{"a": "x", "b": "y", "answer": "1"}])
    (p,) = load_problems(parquet_cfg(path, question_template="{a}-{b}"))
    assert p.question == "x-y"


def test_empty_question_names_the_row(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"a": " ", "answer": "1"}])
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path, question_template="{a}"))
    assert "q.jsonl line 1: the question (dataset.question_template) is empty" in one_line(e)


# --------------------------------------------------------------------------- check_dataset_config


def test_check_reads_only_the_first_row(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(b'\n{"body": "b", "question": "q", "answer": "1"}\n{broken\n\xff\xfe\n')
    check_dataset_config(jsonl_cfg(path, question_template="{body} {question}"))
    with pytest.raises(UserError):
        load_problems(jsonl_cfg(path))  # the whole file is broken further down


def test_check_parquet_reads_the_schema(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", [{"q": "x", "answer": "1", "lvl": 1}])
    check_dataset_config(parquet_cfg(path, question_field="q", difficulty_field="lvl"))
    with pytest.raises(UserError) as e:
        check_dataset_config(parquet_cfg(path))
    msg = one_line(e)
    assert f"{path} schema: missing field 'question' (set dataset.question_field" in msg
    assert "fields present: answer, lvl, q" in msg


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({}, "big.jsonl line 2: missing field 'question' (set dataset.question_field;"),
        ({"question_field": "q", "answer_field": "gold"},
         "line 2: missing field 'gold' (set dataset.answer_field;"),
        ({"question_field": "q", "id_field": "uid"}, "missing field 'uid' (set dataset.id_field;"),
        ({"question_template": "{q} {body}"},
         "line 2: missing field 'body' named in dataset.question_template"),
    ],
)
def test_check_fields_of_the_first_row(tmp_path, kw, needle):
    path = tmp_path / "big.jsonl"
    path.write_text('\n{"q": "x", "answer": "1"}\n')
    with pytest.raises(UserError) as e:
        check_dataset_config(jsonl_cfg(path, **kw))
    msg = one_line(e)
    assert needle in msg and "fields present: answer, q" in msg


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_folder_is_reported_as_a_folder(tmp_path, kind):
    (tmp_path / f"train.{kind}").write_text("")
    cfg = DatasetConfig(kind=kind, name="mine", path=str(tmp_path))
    for check in (load_problems, check_dataset_config):
        with pytest.raises(UserError) as e:
            check(cfg)
        msg = one_line(e)
        assert f"mine: {tmp_path} is a folder, not a file (it holds train.{kind})" in msg
        assert f"set dataset.path to a .{kind} file" in msg and "not found" not in msg


def test_check_missing_file_and_unset_path(tmp_path):
    with pytest.raises(UserError) as e:
        check_dataset_config(jsonl_cfg(tmp_path / "nope.jsonl"))
    assert "file not found" in one_line(e)
    with pytest.raises(UserError) as e:
        check_dataset_config(DatasetConfig(kind="jsonl"))
    assert "dataset.path is not set" in one_line(e)


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"kind": "csv"}, "unknown dataset.kind 'csv'"),
        ({"answer_extraction": "latex"}, "unknown dataset.answer_extraction 'latex'"),
        ({"on_bad_answer": "ignore"}, "unknown dataset.on_bad_answer 'ignore'; known: error, skip"),
        ({"limit": 0}, "dataset.limit=0 keeps no rows"),
        ({"split": "train"}, "unknown embedded split 'train'; known: pool, test"),
        ({"n_pool": 0}, "dataset.n_pool=0 makes the embedded 'pool' split empty"),
        ({"kind": "hub"}, "dataset.path is not set (kind=hub"),
    ],
)
def test_check_config_alone(kw, needle):
    with pytest.raises(UserError) as e:
        check_dataset_config(DatasetConfig(**kw))
    assert needle in one_line(e)


def test_check_accepts_good_configs(tmp_path, monkeypatch):
    check_dataset_config(DatasetConfig())
    check_dataset_config(DatasetConfig(split="test", on_bad_answer="skip"))
    fake_datasets(monkeypatch, error=AssertionError("the hub is not contacted"))
    check_dataset_config(DatasetConfig(kind="hub", path="org/set"))
    path = write_jsonl(tmp_path / "ok.jsonl", ROWS)
    check_dataset_config(jsonl_cfg(path, **MAPPING))


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_check_empty_file(tmp_path, kind):
    path = tmp_path / f"empty.{kind}"
    if kind == "jsonl":
        path.write_text("\n\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"question": pa.array([], pa.string())}), path)
    with pytest.raises(UserError) as e:
        check_dataset_config(DatasetConfig(kind=kind, name="mine", path=str(path)))
    assert f"mine: {path} holds no rows" in one_line(e)
    with pytest.raises(UserError) as e:
        load_problems(DatasetConfig(kind=kind, name="mine", path=str(path)))
    assert f"mine: {path} holds no rows" in one_line(e)


# --------------------------------------------------------------------------- file contents


def test_non_utf8_names_the_file_line_and_byte(tmp_path):
    path = tmp_path / "latin.jsonl"
    first = b'{"question": "q", "answer": "1"}\n'
    path.write_bytes(first + '{"question": "café", "answer": "2"}\n'.encode("latin-1"))
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path))
    msg = one_line(e)
    offset = len(first) + len('{"question": "caf')
    assert f"mine: {path} line 2 (byte offset {offset}): not valid UTF-8 (byte 0xe9)" in msg
    assert "convert the file to UTF-8" in msg


def test_non_utf8_in_the_first_row_for_check(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes('{"question": "é", "answer": "2"}\n'.encode("latin-1"))
    with pytest.raises(UserError) as e:
        check_dataset_config(jsonl_cfg(path))
    assert "line 1 (byte offset 14): not valid UTF-8" in one_line(e)


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + '{"question": "é?", "answer": "1"}\n'.encode())
    check_dataset_config(jsonl_cfg(path))
    assert load_problems(jsonl_cfg(path))[0].question == "é?"


def test_utf16_file_says_to_convert(tmp_path):
    path = tmp_path / "u16.jsonl"
    path.write_text('{"question": "q", "answer": "1"}\n', encoding="utf-16")
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path))
    assert "u16.jsonl is UTF-16 text, not UTF-8; convert the file to UTF-8" in one_line(e)


def test_parquet_given_as_jsonl(tmp_path):
    path = write_parquet(tmp_path / "data.parquet", [{"question": "q", "answer": "1"}])
    for check in (load_problems, check_dataset_config):
        with pytest.raises(UserError) as e:
            check(jsonl_cfg(path))
        msg = one_line(e)
        assert f"{path} does not look like JSONL" in msg and "set dataset.kind=parquet" in msg


def test_gzip_given_as_jsonl(tmp_path):
    import gzip

    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"question": "q", "answer": "1"}\n'))
    with pytest.raises(UserError) as e:
        load_problems(jsonl_cfg(path))
    assert "does not look like JSONL (it is gzip-compressed)" in one_line(e)


def test_jsonl_given_as_parquet(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [{"question": "q", "answer": "1"}])
    for check in (load_problems, check_dataset_config):
        with pytest.raises(UserError) as e:
            check(parquet_cfg(path))
        msg = one_line(e)
        assert f"{path} is not a parquet file (it looks like JSONL text)" in msg
        assert "set dataset.kind=jsonl" in msg


def test_decimal_and_numpy_cells(tmp_path, monkeypatch):
    import decimal

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "dec.parquet"
    column = [decimal.Decimal("43.00"), decimal.Decimal("2.50")]
    pq.write_table(pa.table({"question": ["a", "b"], "answer": pa.array(column, pa.decimal128(5, 2))}), path)
    assert [p.answer for p in load_problems(parquet_cfg(path))] == ["43", "2.5"]
    fake_datasets(monkeypatch, [{"question": "q", "answer": np.float64(7.0)}, {"question": "r", "answer": np.True_}])
    with pytest.raises(UserError) as e:
        load_problems(DatasetConfig(kind="hub", name="h", path="org/set"))
    assert "org/set[pool] row 1: field 'answer' is a boolean (true)" in one_line(e)
