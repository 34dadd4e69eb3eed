"""Every config composes onto the typed schema; mistakes fail with Hydra's own error."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from ufo_rl.config import RunConfig
from ufo_rl.hydra_conf import register_configs, to_run_config

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
register_configs()
GROUPS = ["model", "dataset", "selector", "trainer", "eval", "experiment"]


def _compose(overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        # run_dir is normally ${hydra:runtime.output_dir}, which only exists inside a Hydra job
        return compose("config", overrides=[*overrides, "run_dir=/tmp/ufo-rl-test-run"])


def options(group):
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _leaves(node, prefix=()):
    """(path, value) for every leaf of a plain nested dict."""
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes(group):
    """Each option composes, and every value its file sets is the value the job gets."""
    assert options(group), f"conf/{group} is empty"
    for name in options(group):
        raw = OmegaConf.to_container(OmegaConf.load(CONF_DIR / group / f"{name}.yaml"), resolve=False)
        # a value the option leaves mandatory ("???") is given, as a user must
        given = [f"{group}.{'.'.join(path)}=given" for path, v in _leaves(raw) if v == "???"]
        cfg = _compose([f"{group}={name}", *given])
        assert isinstance(to_run_config(cfg), RunConfig)
        composed = OmegaConf.to_container(cfg, resolve=False)
        if group != "experiment":  # the experiment files are global (# @package _global_)
            composed = composed[group]
        leaves = [(path, v) for path, v in _leaves(raw)
                  if path[0] not in ("defaults", "hydra") and v != "???"]
        assert leaves, f"conf/{group}/{name}.yaml sets nothing"
        for path, value in leaves:
            got = composed
            for key in path:
                got = got[key]
            assert got == value, f"conf/{group}/{name}.yaml: {'.'.join(path)} is {got!r}, the file says {value!r}"


def test_defaults_are_the_embedded_world():
    rc = to_run_config(_compose([]))
    assert rc.model.name_or_path == "tiny" and rc.dataset.kind == "embedded"
    assert rc.selector.name == "ufo" and rc.selector.rule == "top_mid" and rc.selector.fraction == 0.1
    assert "embedded" in rc.eval.benchmarks and rc.eval.benchmarks["embedded"].split == "test"


def test_selector_file_name_is_the_registry_key():
    from ufo_rl.scorers import get_scorer

    for name in ("ufo", "multisample", "random", "full"):
        rc = to_run_config(_compose([f"selector={name}"]))
        assert rc.selector.name == name and get_scorer(name).name == name


def test_experiments_set_their_name_and_the_paper_setting():
    for name in options("experiment"):
        assert to_run_config(_compose([f"experiment={name}"])).experiment == name
    rc = to_run_config(_compose(["experiment=paper_gsm8k_qwen7b"]))
    t = rc.trainer
    assert rc.model.name_or_path == "Qwen/Qwen2.5-7B-Instruct" and rc.dataset.name == "gsm8k"
    assert (t.learning_rate, t.num_generations, t.max_completion_length, t.temperature) == (1e-6, 7, 1024, 1.0)
    assert list(rc.eval.benchmarks) == ["gsm8k_test"]
    assert (rc.model.dtype, rc.selector.batch_size, t.bf16) == ("float16", 8, True)  # the authors' scoring


def _grpo_config(rc, tmp_path):
    """The ``trl.GRPOConfig`` that ``train_grpo`` would build for ``rc`` (here: CPU, one process)."""
    from ufo_rl.train import grpo_args

    return grpo_args(rc.trainer, tmp_path, steps=10, seed=0, progress=False)


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_gives_trl_whole_prompt_groups(name, tmp_path):
    """TRL's GRPO samples ``num_generations`` completions per prompt and needs every batch of
    completions it generates (per-device batch x processes x gradient accumulation) to hold whole
    groups. In this project ``per_device_prompts`` counts prompts and TRL's
    ``per_device_train_batch_size`` counts completions."""
    from ufo_rl.train import prompts_per_step

    rc = to_run_config(_compose([f"experiment={name}"]))
    t = rc.trainer
    args = _grpo_config(rc, tmp_path)
    assert args.num_generations == t.num_generations >= 2
    assert args.per_device_train_batch_size == t.per_device_prompts * t.num_generations
    assert args.world_size == 1 and args.steps_per_generation == t.gradient_accumulation_steps
    completions = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    assert args.generation_batch_size == completions
    assert completions % t.num_generations == 0
    # each optimizer step sees exactly the prompts the budget counts, each num_generations times
    assert completions // t.num_generations == prompts_per_step(t) * args.world_size
    # and it stays whole under a multi-process launch (accelerate), whatever the process count
    for processes in (2, 3, 8):
        assert (args.per_device_train_batch_size * processes * args.gradient_accumulation_steps) \
            % t.num_generations == 0


def test_batch_counted_in_prompts_is_rejected_by_trl(tmp_path):
    """The paper's 2 prompts x 7 generations x 8 accumulation steps: handing TRL the prompt count
    as its per-device batch gives 2 x 1 x 8 = 16 completions per generation batch, not a
    multiple of 7, and TRL refuses it before any model is loaded."""
    rc = to_run_config(_compose(["experiment=paper_gsm8k_qwen7b",
                                 "+trainer.extra.per_device_train_batch_size=2"]))
    assert (2 * 1 * 8) % rc.trainer.num_generations != 0
    with pytest.raises(ValueError, match=r"generation_batch_size \(16\) must be divisible by num_generations \(7\)"):
        _grpo_config(rc, tmp_path)


def test_a_single_generation_per_prompt_is_rejected(tmp_path):
    rc = to_run_config(_compose(["trainer.num_generations=1"]))
    with pytest.raises(ValueError, match="at least 2 generations"):
        _grpo_config(rc, tmp_path)


def test_unknown_key_fails():
    with pytest.raises(ConfigCompositionException) as e:
        _compose(["model.colour=red"])
    assert "Key 'colour' not in 'ModelConfig'" in str(e.value.__cause__)
    with pytest.raises(Exception, match="colour"):  # appending does not get past the conversion
        to_run_config(_compose(["+model.colour=red"]))


def test_wrong_type_fails():
    with pytest.raises(ConfigCompositionException) as e:
        _compose(["trainer.max_steps=many"])
    assert isinstance(e.value.__cause__, ValidationError)


def test_unknown_group_option_fails():
    with pytest.raises(ConfigCompositionException, match="selector"):
        _compose(["selector=best"])


def test_converted_config_is_plain_dataclasses():
    rc = to_run_config(_compose([]))
    assert not OmegaConf.is_config(rc.model) and not OmegaConf.is_config(rc.eval.benchmarks)


def test_a_mandatory_value_left_unset_fails_instead_of_keeping_the_default():
    from ufo_rl.errors import UserError

    with pytest.raises(UserError, match=r"model.name_or_path is mandatory"):
        to_run_config(_compose(["model=hf"]))
    rc = to_run_config(_compose(["model=hf", "model.name_or_path=/models/x"]))
    assert rc.model.name_or_path == "/models/x"
    assert to_run_config(_compose([])).model.name_or_path == "tiny"  # the default option sets it


def test_model_threads_apply_on_the_cpu_only(monkeypatch):
    """``model.threads`` sizes the CPU's matrix work; a GPU run keeps torch's default."""
    import torch

    from ufo_rl import models
    from ufo_rl.config import ModelConfig

    before = torch.get_num_threads()
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    models.apply_threads(ModelConfig(name_or_path="tiny", threads=1, device="cpu"))
    assert calls == [1]
    monkeypatch.setattr(models, "resolve_device", lambda cfg: torch.device("cuda"))
    models.apply_threads(ModelConfig(name_or_path="tiny", threads=1, device="cuda"))
    models.apply_threads(ModelConfig(name_or_path="tiny", threads=None, device="cpu"))
    assert calls == [1]
    assert torch.get_num_threads() == before
