"""Supervised tasks for subspace training: data + loss + a per-example score, and the zoo's.

A `Task` holds training and evaluation data, each either a pair of tensors (x, y) (batched by
indexing, the fast path) or a `torch.utils.data.Dataset` of (x, y) items (batched by a
`DataLoader`). `score(outputs, y)` returns one number per example; the reported metric is the
mean over the whole evaluation set (a ratio of sums over batches, never a mean of per-batch
means).

Zoo models by name (`zoo_model(name)` -> (factory, task)), trained from their fresh
initialisation on the `digits` dataset (workbench.data.digits, the zoo's split: 1347 train /
450 test images):

- `digits-mlp`: the zoo's `DigitsMLP` without its batch norm (`plain=True`; 64-128-128-10,
  ReLU), D = 26,122;
- `digits-cnn`: the zoo's `DigitsCNN` without its batch norm and hidden linear layer
  (`plain=True`; two 3x3 convs, 16 and 32 channels), D = 6,090;
- `digits-mlp-w<W>` (8 <= W <= 2048): the same MLP with hidden width W, 64-W-W-10, for the
  paper's width sweep (D = W^2 + 76 W + 10; W = 128 is digits-mlp's architecture).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workbench.errors import InputError

Data = Any  # tuple[Tensor, Tensor] | torch.utils.data.Dataset


def accuracy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Per-example 0/1 correctness of the argmax class, shape (n,)."""
    return (outputs.argmax(-1) == targets).to(torch.float64)


@dataclass(frozen=True)
class Task:
    """Training data, evaluation data, a mean loss and a per-example score.

    Attributes:
        train, test: (x, y) tensors with the same first dimension, or a Dataset of (x, y).
        loss: (outputs, y) -> scalar mean loss (default cross-entropy).
        score: (outputs, y) -> (n,) per-example scores (default accuracy).
        metric: the score's name (`accuracy`): frame metrics are `test_<metric>`,
            `train_<metric>`.
        name: the task's name in provenance.
    """

    train: Data
    test: Data
    loss: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy
    score: Callable[[Tensor, Tensor], Tensor] = accuracy
    metric: str = "accuracy"
    name: str = "task"

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            data = getattr(self, split)
            if isinstance(data, (tuple, list)):
                if len(data) != 2 or not all(isinstance(t, Tensor) for t in data):
                    raise InputError(f"Task.{split} must be (x, y) tensors or a Dataset")
                if len(data[0]) != len(data[1]) or len(data[0]) == 0:
                    raise InputError(
                        f"Task.{split}: x has {len(data[0])} rows and y {len(data[1])}; they "
                        "must match and be nonzero"
                    )
            elif not isinstance(data, torch.utils.data.Dataset):
                raise InputError(
                    f"Task.{split} must be (x, y) tensors or a torch Dataset, got "
                    f"{type(data).__name__}"
                )

    def batches(
        self,
        split: str,
        batch_size: int,
        device: torch.device,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """(x, y) batches of `split` on `device`, shuffled by `generator` when given."""
        data = getattr(self, split)
        if isinstance(data, (tuple, list)):
            x, y = data
            n = len(x)
            order = torch.randperm(n, generator=generator) if generator is not None else None
            for start in range(0, n, batch_size):
                index = (
                    order[start : start + batch_size]
                    if order is not None
                    else slice(start, start + batch_size)
                )
                yield x[index].to(device), y[index].to(device)
            return
        loader = torch.utils.data.DataLoader(
            data, batch_size=batch_size, shuffle=generator is not None, generator=generator
        )
        for x, y in loader:
            yield x.to(device), y.to(device)

    @torch.no_grad()
    def evaluate(
        self, model: Callable[[Tensor], Tensor], split: str, batch_size: int, device: torch.device
    ) -> dict[str, float]:
        """Mean loss and mean score over all of `split` (sums over batches / example count)."""
        loss_sum, score_sum, count = 0.0, 0.0, 0
        for x, y in self.batches(split, batch_size, device):
            outputs = model(x)
            loss_sum += float(self.loss(outputs, y)) * len(y)
            score_sum += float(self.score(outputs, y).sum())
            count += len(y)
        return {"loss": loss_sum / count, self.metric: score_sum / count}


class WidthMLP(nn.Module):
    """64 -> W -> W -> 10 with ReLUs: `DigitsMLP(plain=True)` (workbench.zoo.digits, without
    batch norm) at hidden width W."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, width)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(width, width)
        self.act2 = nn.ReLU()
        self.head = nn.Linear(width, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(len(x), -1)
        return self.head(self.act2(self.fc2(self.act1(self.fc1(x)))))


WIDTH_NAME = re.compile(r"digits-mlp-w(\d+)")
MIN_WIDTH, MAX_WIDTH = 8, 2048
ZOO_NAMES = ("digits-mlp", "digits-cnn", "digits-mlp-w<W>")


def digits_task(image: bool) -> Task:
    """The zoo's digits split as tensors: x (n, 64), or (n, 1, 8, 8) with `image`."""
    from workbench.data import digits
    from workbench.zoo.digits import DATA_SEED

    train, test = digits.train_test(digits.generate(None, DATA_SEED))
    x_train, y_train = (torch.from_numpy(a) for a in digits.as_arrays(train, image=image))
    x_test, y_test = (torch.from_numpy(a) for a in digits.as_arrays(test, image=image))
    return Task((x_train, y_train), (x_test, y_test), name="digits")


def zoo_model(name: str) -> tuple[Callable[[], nn.Module], Task]:
    """(module factory, task) for a zoo model name (see the module docstring)."""
    from workbench.zoo.digits import cnn, mlp

    if name == "digits-mlp":  # the plain architecture: Li et al. train networks without BN
        return (lambda: mlp(plain=True)), digits_task(image=False)
    if name == "digits-cnn":
        return (lambda: cnn(plain=True)), digits_task(image=True)
    match = WIDTH_NAME.fullmatch(name)
    if match and MIN_WIDTH <= int(match.group(1)) <= MAX_WIDTH:
        width = int(match.group(1))
        return (lambda: WidthMLP(width)), digits_task(image=False)
    raise InputError(
        f"unknown model {name!r} for intrinsic-dim; valid: {', '.join(ZOO_NAMES)} "
        f"(W from {MIN_WIDTH} to {MAX_WIDTH}, e.g. digits-mlp-w64)"
    )
