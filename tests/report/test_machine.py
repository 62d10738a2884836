"""machine(): the documented facts about the machine, JSON-serialisable."""

import json
import os
import platform

import pytest
import torch

from visual_rft.report.machine import machine

KEYS = {"platform", "python", "torch", "torch_threads", "cpu_count", "OMP_WAIT_POLICY"}


def test_documented_keys_with_this_machines_values(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    info = machine()
    assert KEYS <= set(info)
    assert set(info) - KEYS <= {"cpu", "gpu"}
    assert info["python"] == platform.python_version()
    assert info["torch"] == torch.__version__
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["cpu_count"] == os.cpu_count()
    assert info["OMP_WAIT_POLICY"] == "PASSIVE"
    assert ("gpu" in info) is torch.cuda.is_available()
    assert json.loads(json.dumps(info)) == info


def test_unset_omp_policy_reads_as_none(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert machine()["OMP_WAIT_POLICY"] is None


def test_cpu_model_comes_from_lscpu():
    import shutil
    import subprocess

    if shutil.which("lscpu") is None:
        pytest.skip("no lscpu here")
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name:")]
    if not names:
        pytest.skip("lscpu names no CPU model here")
    assert machine()["cpu"] == names[-1]


def test_package_versions_and_missing_packages():
    import numpy
    import transformers

    info = machine("transformers", "numpy", "no_such_package_xyz")
    assert info["transformers"] == transformers.__version__
    assert info["numpy"] == numpy.__version__
    assert info["no_such_package_xyz"] is None
    json.dumps(info)


def test_package_without_a_version_attribute():
    """pycocotools has no __version__: machine() reads the installed distribution's version instead."""
    from importlib import metadata

    info = machine("pycocotools")
    assert info["pycocotools"] == metadata.version("pycocotools")
    json.dumps(info)
