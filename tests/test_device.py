"""`device=` resolution: a bare "cuda" names one GPU index (torch.cuda.set_device refuses an index-less device)."""

import re

import pytest
import torch

from zrenie import api
from zrenie.errors import ConfigError


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_cpu_and_auto_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert api.resolve_device("cpu") == torch.device("cpu")
    assert api.resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("name, rank, expected", [
    ("cuda", 0, "cuda:0"), ("cuda", 1, "cuda:1"), ("auto", 1, "cuda:1"), ("cuda:1", 0, "cuda:1")])
def test_cuda_always_gets_an_index(two_gpus, monkeypatch, name, rank, expected):
    monkeypatch.setattr(api.dist, "local_rank", lambda: rank)
    device = api.resolve_device(name)
    assert device == torch.device(expected) and device.index is not None


@pytest.mark.parametrize("name, message", [
    ("gpu", "unknown device 'gpu'"), ("cuda:2", "this machine has 2 GPU(s)")])
def test_bad_device_is_one_config_error(two_gpus, name, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        api.resolve_device(name)


def test_cuda_without_cuda_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        api.resolve_device("cuda")
