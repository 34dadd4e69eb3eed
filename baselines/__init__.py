"""Baseline selectors, installed as the package ``ufo_rl_baselines`` (``pyproject.toml``: the folder
keeps its name, the import name avoids the PyPI package ``baselines``).

The registry (``ufo_rl/scorers.py``) imports this package through its entry point
``ufo_rl.scorers``; importing it imports every module of this folder, and each registers its
scorers. A new scorer is therefore one module here plus its ``conf/selector/<name>.yaml``.
"""

import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")
