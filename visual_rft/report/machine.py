"""The machine a run or benchmark ran on: platform, Python, torch threads, CPU (and GPU) model, OMP policy."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

import torch


def machine(*packages: str) -> dict:
    """Machine facts plus the installed versions of `packages` (e.g. "transformers", "trl"; None if absent)."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    for name in packages:
        try:  # the distribution's version: pycocotools, for one, has no __version__ attribute
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return info
