"""The Slurm launcher config composes into submitit's Slurm launcher with one GPU per job."""

from __future__ import annotations

from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_slurm_gpu_launcher_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ufo_rl.hydra_conf import register_configs

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


# Runs bench/run.py with submitit's AutoExecutor replaced: the Slurm executor that the launcher
# asks for is built for real (a stub `srun` on PATH lets it start without a cluster), so it
# validates every parameter and renders the sbatch script exactly as a submission would; the
# jobs themselves then run in this process through submitit's debug executor.
DRY_RUN_DRIVER = '''
import os, runpy, sys
import submitit

record = sys.argv.pop(1)
Auto = submitit.AutoExecutor


class DryRunSlurm(Auto):
    def __init__(self, folder, cluster=None, **kwargs):
        assert cluster == "slurm", cluster
        self.slurm = Auto(folder, cluster="slurm", **kwargs)
        super().__init__(folder, cluster="debug")

    def update_parameters(self, **kwargs):
        self.slurm.update_parameters(**kwargs)
        with open(record, "w") as f:
            f.write(self.slurm._executor._make_submission_file_text("DRY-RUN-COMMAND", "0"))
        super().update_parameters(**kwargs)


submitit.AutoExecutor = DryRunSlurm
sys.argv[0] = os.path.join(os.environ["UFO_RL_ROOT"], "bench", "run.py")
runpy.run_path(sys.argv[0], run_name="__main__")
'''


@pytest.mark.slow
def test_slurm_gpu_launcher_dry_run(tmp_path):
    """A two-point sweep through hydra/launcher=slurm_gpu: the sbatch script asks for what the
    config says, and both jobs run to the end and write their run folders."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    import json
    import os
    import subprocess
    import sys

    from helpers import save_random_model

    model = save_random_model(tmp_path / "micro")
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "srun").write_text("#!/bin/sh\necho 'the dry run never calls srun' >&2\nexit 1\n")
    (stub / "srun").chmod(0o755)
    driver, record = tmp_path / "driver.py", tmp_path / "job.sbatch"
    driver.write_text(DRY_RUN_DRIVER)
    root = CONF.parent
    env = {**os.environ, "PATH": f"{stub}{os.pathsep}{os.environ['PATH']}", "UFO_RL_ROOT": str(root)}
    r = subprocess.run(
        [sys.executable, str(driver), str(record), "-m", "hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu",
         "stage=select", f"model.name_or_path={model}", "dataset.n_pool=120", "dataset.n_test=10",
         f"results_dir={tmp_path / 'res'}", f"cache_dir={tmp_path / 'cache'}", "progress=false",
         "selector=ufo,random"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    sbatch = record.read_text()
    for line in ["#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --ntasks-per-node=1",
                 "#SBATCH --cpus-per-task=16", "#SBATCH --mem=128GB", "#SBATCH --time=1440", "#SBATCH --nodes=1"]:
        assert line in sbatch.splitlines(), (line, sbatch)
    folders = sorted(p for p in (tmp_path / "res" / "runs" / "default").iterdir()
                     if p.is_dir() and not p.name.startswith("."))
    assert [f.name.split("-")[0] for f in folders] == ["random", "ufo"]
    for f in folders:
        assert json.loads((f / "meta.json").read_text())["status"] == "done"
