"""The Slurm launcher config composes into submitit's Slurm launcher with one GPU per job."""

from __future__ import annotations

from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_slurm_gpu_launcher_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ufo_rl.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=["hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu",
                                 "experiment=paper_gsm8k_qwen7b"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (1, 1, 1)
    assert launcher.partition == "gpu" and launcher.timeout_min == 1440
    assert cfg.experiment == "paper_gsm8k_qwen7b"
