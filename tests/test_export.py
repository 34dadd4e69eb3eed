"""The exports load with each consumer's own loader, and each consumer's reward reads the gold answer.

- TRL: ``datasets.load_dataset("json", ...)``; ``GRPOTrainer`` passes every column to a reward
  as a keyword argument, so :func:`ufo_rl.rewards.correctness_reward` reads ``answer`` and TRL's
  own ``trl.rewards.accuracy_reward`` reads ``solution``.
- open-r1: ``get_dataset`` is ``datasets.load_dataset(dataset_name)`` on a folder, ``make_conversation``
  builds the chat from ``dataset_prompt_column`` (here ``problem``), and ``accuracy_reward``
  (``src/open_r1/rewards.py``, mirrored in :func:`open_r1_accuracy`; open-r1 is not on PyPI)
  parses ``solution`` with math-verify.
- verl: ``RLHFDataset`` reads parquet with ``datasets.load_dataset("parquet", ...)``; the
  reward manager calls ``compute_score(data_source=, solution_str=, ground_truth=, extra_info=)``
  with ``ground_truth = reward_model["ground_truth"]``. The test through verl's own classes runs
  where verl imports, and is skipped elsewhere.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from datasets import load_dataset
from helpers import load_bench_script
from omegaconf import OmegaConf

from ufo_rl.export import OPEN_R1_DIR, TRL_FILE, VERL_FILE, export_subset, verl_data_source
from ufo_rl.problems import Problem
from ufo_rl.rewards import correctness_reward

PROBLEMS = [
    Problem("g1", "A box holds 1,000 pens and 234 more arrive. How many pens?", "1,234",
            solution="1,000 + 234 = 1,234\n#### 1,234", source="gsm8k"),
    Problem("m1", "Write one half as a fraction.", "\\frac{1}{2}",
            solution="One half is $\\boxed{\\frac{1}{2}}$.", difficulty=2, source="math500"),
    Problem("a1", "12+3=?", "15", difficulty=1, source="embedded-arith"),
]
WRONG = "7777"
R1_SYSTEM_PROMPT = load_bench_script("authors").AUTHORS_SYSTEM_PROMPT  # the authors' (conf/model/hf.yaml)


def r1(answer: str) -> str:
    """A completion in the R1 format the project trains (answer in tags, no LaTeX)."""
    return f"<think>working</think>\n<answer>{answer}</answer>"


def boxed_reply(answer: str) -> list[dict]:
    """A conversational completion that states its answer in ``\\boxed{}`` (what TRL's and
    open-r1's accuracy rewards extract)."""
    return [{"role": "assistant", "content": f"So the answer is $\\boxed{{{answer}}}$."}]


def open_r1_accuracy(completions: list[list[dict]], solution: list[str]) -> list[float | None]:
    """open-r1's ``accuracy_reward`` (``src/open_r1/rewards.py``), its parse and verify calls as written there."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    out = []
    for content, sol in zip([c[0]["content"] for c in completions], solution):
        gold = parse(sol, extraction_mode="first_match")
        if not gold:
            out.append(None)
            continue
        answer = parse(content, extraction_config=[LatexExtractionConfig(
            normalization_config=NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True,
                                                     equations=True, boxed="all", units=True),
            boxed_match_priority=0, try_extract_without_anchor=False)], extraction_mode="first_match")
        out.append(float(verify(gold, answer)))
    return out


@pytest.fixture
def run(tmp_path):
    export_subset(PROBLEMS, tmp_path, R1_SYSTEM_PROMPT)
    return tmp_path


def test_trl_loads_subset_jsonl_and_both_rewards_read_their_column(run):
    from trl.rewards import accuracy_reward

    ds = load_dataset("json", data_files=str(run / TRL_FILE), split="train")
    assert ds["id"] == ["g1", "m1", "a1"] and ds["answer"] == [p.answer for p in PROBLEMS]
    assert ds[0]["prompt"] == [{"role": "system", "content": R1_SYSTEM_PROMPT},
                               {"role": "user", "content": PROBLEMS[0].question}]
    assert ds["problem"] == [p.question for p in PROBLEMS]
    assert ds["reference_solution"] == [p.solution for p in PROBLEMS]
    # the project's reward, as GRPOTrainer calls it (the `answer` column as a keyword)
    assert correctness_reward([r1(p.answer) for p in PROBLEMS], answer=ds["answer"], strict=True) == [1.0] * 3
    assert correctness_reward([r1(WRONG)] * 3, answer=ds["answer"], strict=True) == [0.0] * 3
    # TRL's own accuracy reward reads `solution`: every gold parses, right and wrong are told apart
    assert accuracy_reward([boxed_reply(p.answer) for p in PROBLEMS], solution=ds["solution"]) == [1.0] * 3
    assert accuracy_reward([boxed_reply(WRONG)] * 3, solution=ds["solution"]) == [0.0] * 3


@pytest.mark.slow
def test_grpo_trainer_hands_the_columns_to_the_rewards(run, tmp_path):
    """One GRPO step of TRL on subset.jsonl as it is: chat prompts, null columns, and the gold
    columns reaching the reward functions as keywords."""
    from helpers import save_random_model
    from trl import GRPOConfig, GRPOTrainer

    seen = {}

    def spy(completions, answer, solution, **kwargs):
        seen.update(answer=answer, solution=solution)
        return [0.0] * len(completions)

    ds = load_dataset("json", data_files=str(run / TRL_FILE), split="train")
    args = GRPOConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=6,
                      num_generations=2, max_completion_length=4, use_cpu=True, report_to="none",
                      save_strategy="no", disable_tqdm=True)
    GRPOTrainer(model=str(save_random_model(tmp_path / "model")), reward_funcs=[spy], args=args,
                train_dataset=ds).train()
    golds = {p.answer: f"\\boxed{{{p.answer}}}" for p in PROBLEMS} | {"1,234": "\\boxed{1234}"}
    assert seen["answer"] and all(golds[a] == s for a, s in zip(seen["answer"], seen["solution"]))


def test_open_r1_loads_its_folder_and_its_accuracy_reward_reads_solution(run):
    # the run folder holds other *.jsonl (train.jsonl is the GRPO log): open-r1 gets a folder of its own
    (run / "train.jsonl").write_text('{"step": 1, "reward_mean": 0.5}\n')
    ds = load_dataset(str(run / OPEN_R1_DIR))["train"]
    trl_rows = load_dataset("json", data_files=str(run / TRL_FILE), split="train")
    assert ds.to_list() == trl_rows.to_list()
    # make_conversation with dataset_prompt_column=problem and system_prompt=<the R1 prompt>
    chat = ds.map(lambda ex: {"prompt": [{"role": "system", "content": R1_SYSTEM_PROMPT},
                                         {"role": "user", "content": ex["problem"]}]})
    assert chat["prompt"] == trl_rows["prompt"]
    assert open_r1_accuracy([boxed_reply(p.answer) for p in PROBLEMS], ds["solution"]) == [1.0] * 3
    assert open_r1_accuracy([boxed_reply(WRONG)] * 3, ds["solution"]) == [0.0] * 3
    # its reward needs LaTeX: an answer only in <answer> tags earns nothing there (use ours for that)
    assert open_r1_accuracy([[{"role": "assistant", "content": r1("15")}]], ["\\boxed{15}"]) == [0.0]


def test_verl_parquet_has_verls_columns_and_compute_score_reads_ground_truth(run):
    from ufo_rl.verl_reward import compute_score

    ds = load_dataset("parquet", data_files=str(run / VERL_FILE))["train"]
    assert set(ds.column_names) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    assert ds["data_source"] == ["ufo_rl/gsm8k", "ufo_rl/math500", "ufo_rl/embedded-arith"]
    assert ds[1]["prompt"][-1] == {"role": "user", "content": PROBLEMS[1].question}
    assert ds[1]["reward_model"] == {"style": "rule", "ground_truth": "\\frac{1}{2}"}
    assert [r["extra_info"]["index"] for r in ds] == [0, 1, 2] and ds[2]["extra_info"]["id"] == "a1"
    for row, p in zip(ds, PROBLEMS):
        given = dict(data_source=row["data_source"], ground_truth=row["reward_model"]["ground_truth"],
                     extra_info=row["extra_info"])
        assert compute_score(solution_str=r1(p.answer), **given) == 1.0
        assert compute_score(solution_str=r1(WRONG), **given) == 0.0
        assert compute_score(solution_str=r1(p.answer) + " and more", **given) == 0.0
        assert compute_score(solution_str=r1(p.answer) + " and more", strict=False, **given) == 1.0


def test_compute_score_loads_from_its_file_as_verl_loads_a_custom_reward():
    """verl's ``load_module`` (and older releases' ``get_custom_reward_fn``) run a file path
    through ``spec_from_file_location`` under another module name."""
    import ufo_rl.verl_reward

    spec = importlib.util.spec_from_file_location("custom_module", ufo_rl.verl_reward.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.compute_score(data_source="x", solution_str=r1("15"), ground_truth="15", extra_info={}) == 1.0


def test_verl_reads_the_parquet_and_the_reward_with_its_own_classes(run, tmp_path):
    rl_dataset = pytest.importorskip("verl.utils.dataset.rl_dataset")
    from omegaconf import OmegaConf
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from ufo_rl.tiny_model import build_tokenizer

    data = rl_dataset.RLHFDataset(data_files=str(run / VERL_FILE), tokenizer=build_tokenizer(), config=OmegaConf.create(
        {"cache_dir": str(tmp_path / "verl_cache"), "max_prompt_length": 2048, "filter_overlong_prompts_workers": 1}))
    assert len(data) == 3
    item = data[0]
    assert item["raw_prompt"][-1]["content"] == PROBLEMS[0].question and item["index"] == 0
    score = get_custom_reward_fn(OmegaConf.create({"reward": {"custom_reward_function": {
        "path": "pkg://ufo_rl.verl_reward", "name": "compute_score"}}}))
    given = dict(data_source=item["data_source"], ground_truth=item["reward_model"]["ground_truth"],
                 extra_info=item["extra_info"])
    assert score(solution_str=r1("1234"), **given) == 1.0 and score(solution_str=r1(WRONG), **given) == 0.0


# ---- verl's default dispatch on data_source -------------------------------------------------
# verl's default_compute_score (verl/utils/reward_score/__init__.py of volcengine/verl, read at
# commit b178a3cd56f58b2d502255daba591e92833930a7, 2026-01-29) picks its scorer from data_source
# alone, branch by branch, in this order; any other name raises NotImplementedError.
VERL_EXACT = {
    "gsm8k": {"openai/gsm8k"},
    "math_reward": {"lighteval/MATH", "DigitalLearningGmbH/MATH-lighteval", "HuggingFaceH4/MATH-500"},
    "math_dapo": {"math_dapo", "math", "math_dapo_reasoning"},
    "prime_math": {"numina_aops_forum", "numina_synthetic_math", "numina_amc_aime", "numina_synthetic_amc",
                   "numina_cn_k12", "numina_olympiads"},
    "sandbox_fusion/prime_code": {"codecontests", "apps", "codeforces", "taco"},
    "geo3k": {"hiyouga/geometry3k"},
    "search_r1_like_qa_em": {"searchR1_nq", "searchR1_triviaqa", "searchR1_popqa", "searchR1_hotpotqa",
                             "searchR1_2wikimultihopqa", "searchR1_musique", "searchR1_bamboogle"},
}
VERL_PREFIX = {"math_dapo": "aime"}  # `or data_source.startswith("aime")`, in the math_dapo branch


def verl_default_scorer(data_source: str) -> str | None:
    """The scorer verl's default_compute_score would use for ``data_source``; None: it raises."""
    for scorer, names in VERL_EXACT.items():
        if data_source in names or (scorer in VERL_PREFIX and data_source.startswith(VERL_PREFIX[scorer])):
            return scorer
    return None


CONF_DATASETS = Path(__file__).resolve().parents[1] / "conf" / "dataset"


def exported_names() -> list[str]:
    """Every dataset name the export may see: each config of conf/dataset/ (its name, and its hub
    path), the embedded world's source, and names that verl itself knows."""
    names = {"embedded-arith", "math", "aime24", "aime", "AIME24", "gsm8k", "openai/gsm8k", "lighteval/MATH",
             "math_dapo", "HuggingFaceH4/MATH-500", "numina_olympiads", "hiyouga/geometry3k", "searchR1_nq", ""}
    for path in sorted(CONF_DATASETS.glob("*.yaml")):
        cfg = OmegaConf.to_container(OmegaConf.load(path))
        names.add(cfg.get("name", path.stem))
        if cfg.get("path"):
            names.add(cfg["path"])
    return sorted(names)


def test_the_dispatch_rules_catch_bare_names():
    """The encoded rules do what verl does to the bare names: the reason for the prefix."""
    assert verl_default_scorer("aime24") == "math_dapo" and verl_default_scorer("math") == "math_dapo"
    assert verl_default_scorer("openai/gsm8k") == "gsm8k" and verl_default_scorer("lighteval/MATH") == "math_reward"
    assert verl_default_scorer("HuggingFaceH4/MATH-500") == "math_reward"
    assert verl_default_scorer("gsm8k") is None and verl_default_scorer("math500") is None


@pytest.mark.parametrize("name", exported_names())
def test_no_exported_data_source_is_matched_by_verls_default_scorer(name, tmp_path):
    export_subset([Problem("x", "1+1=?", "2", source=name)], tmp_path)
    data_source = load_dataset("parquet", data_files=str(tmp_path / VERL_FILE))["train"]["data_source"][0]
    assert data_source == verl_data_source(name) and data_source.startswith("ufo_rl/")
    assert verl_default_scorer(data_source) is None, (name, data_source)


def test_verls_own_default_scorer_refuses_the_exported_data_sources():
    """Where verl imports: its own function raises for every exported name (no silent scorer)."""
    reward_score = pytest.importorskip("verl.utils.reward_score")
    for name in exported_names():
        with pytest.raises(NotImplementedError):
            reward_score.default_compute_score(verl_data_source(name), r1("2"), "2")
