"""Shared fixtures: the real MiniLM, a small GPT-NeoX built from a config, a plain MLP."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from torch import nn

from workbench import load_model
from workbench.zoo.hf_folder import build_gpt_neox

WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "bird",
    "sat",
    "ran",
    "flew",
    "on",
    "over",
    "under",
    "mat",
    "log",
    "tree",
    "big",
    "small",
    "red",
    "blue",
    "and",
    ".",
]


@pytest.fixture(scope="session")
def minilm():
    return load_model("minilm", device="cpu")


@pytest.fixture(scope="session")
def neox_dir(tmp_path_factory):
    return build_gpt_neox(tmp_path_factory.mktemp("neox"), WORDS, n_layers=4, d_model=64, n_heads=4)


@pytest.fixture(scope="session")
def neox(neox_dir):
    return load_model(neox_dir, device="cpu")


class MLP(nn.Module):
    """A plain module: two hidden layers, one shared ReLU module (called twice per pass)."""

    def __init__(self, d_in: int = 8, d_hidden: int = 16, d_out: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_hidden)
        self.act = nn.ReLU()
        self.head = nn.Linear(d_hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.fc2(self.act(self.fc1(x)))))


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return load_model(MLP(), device="cpu", name="mlp")


def hook_count(module: nn.Module) -> int:
    """Forward hooks on `module` and all its submodules."""
    return sum(len(m._forward_hooks) for m in module.modules())


@pytest.fixture(scope="session")
def quick_zoo(tmp_path_factory):
    """A zoo root with a quick (tiny, few-step) toy-lm build, shared by the whole session."""
    from workbench import zoo

    root = tmp_path_factory.mktemp("quick-zoo")
    zoo.build("toy-lm", root=root, quick=True)
    return root
