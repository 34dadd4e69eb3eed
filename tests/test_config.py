"""Every config composes onto the typed schema; mistakes fail with Hydra's own error."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from ufo_rl.config import RunConfig, register_configs, to_run_config

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
register_configs()
GROUPS = ["model", "dataset", "selector", "trainer", "eval", "experiment"]


def _compose(overrides):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        # run_dir is normally ${hydra:runtime.output_dir}, which only exists inside a Hydra job
        return compose("config", overrides=[*overrides, "run_dir=/tmp/ufo-rl-test-run"])


def options(group):
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_composes(group):
    assert options(group), f"conf/{group} is empty"
    for name in options(group):
        rc = to_run_config(_compose([f"{group}={name}"]))
        assert isinstance(rc, RunConfig)


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
    assert (t.per_device_prompts * t.num_generations) % t.num_generations == 0
    assert list(rc.eval.benchmarks) == ["gsm8k_test"]


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
