"""Zoo recipes `digits-mlp` and `digits-cnn`: small classifiers on the 8x8 `digits` dataset,
trained far past zero training error (the terminal phase of training, where neural collapse
appears; Papyan, Han & Donoho 2020). See datasets/zoo-digits.md.

Checkpoints are state dicts `step_<epoch>.safetensors` of `mlp()` / `cnn()` (the recipes'
`module_factory`), so `CheckpointSeries(folder, build=mlp)` or `workbench.zoo.load_series(name)`
loads them. Every layer is its own submodule, so every site is distinct:

- `digits-mlp` (input (n, 64)): `fc1 -> act1 -> fc2 -> act2 -> head`; the penultimate features
  (the last-layer features of neural collapse) are the site `act2` (128-d).
- `digits-cnn` (input (n, 1, 8, 8)): `conv1 -> act1 -> pool1 -> conv2 -> act2 -> pool2 ->
  flatten -> head`; the penultimate features are the site `flatten` (128-d = 32 x 2 x 2).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from workbench import console
from workbench.zoo.catalog import DIGITS_EPOCHS as EPOCHS

DATA_SEED = 0
MODEL_SEED = 0
QUICK_EPOCHS = 12
BATCH_SIZE = 128
LR = 0.05
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4


class DigitsMLP(nn.Module):
    """64 -> 128 -> 128 -> 10 with ReLUs; penultimate features at `act2`."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(128, 128)
        self.act2 = nn.ReLU()
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        return self.head(self.act2(self.fc2(self.act1(self.fc1(x)))))


class DigitsCNN(nn.Module):
    """Two 3x3 conv layers (16, 32 channels) with max pooling and a linear head on (1, 8, 8)
    images; penultimate features at `flatten` (128-d)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.act1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)  # 8x8 -> 4x4
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.act2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)  # 4x4 -> 2x2
        self.flatten = nn.Flatten()
        self.head = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), 1, 8, 8)
        x = self.pool1(self.act1(self.conv1(x)))
        x = self.pool2(self.act2(self.conv2(x)))
        return self.head(self.flatten(x))


def mlp() -> DigitsMLP:
    """A fresh (untrained) `digits-mlp` module, the recipe's `module_factory`."""
    return DigitsMLP()


def cnn() -> DigitsCNN:
    """A fresh (untrained) `digits-cnn` module, the recipe's `module_factory`."""
    return DigitsCNN()


def checkpoint_epochs(total: int) -> list[int]:
    """Epochs 0..10, then every 10, plus the last."""
    return sorted({*range(min(10, total) + 1), *range(10, total + 1, 10), total})


def _arrays(image: bool) -> tuple[torch.Tensor, ...]:
    from workbench.data import digits

    train, test = digits.train_test(digits.generate(None, DATA_SEED))
    x_train, y_train = digits.as_arrays(train, image=image)
    x_test, y_test = digits.as_arrays(test, image=image)
    return tuple(torch.from_numpy(a) for a in (x_train, y_train, x_test, y_test))


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    model.train()
    return float(F.cross_entropy(logits, y)), float((logits.argmax(-1) == y).float().mean())


def _train(
    folder: Path, quick: bool, factory, image: bool, epochs: int | None = None
) -> dict[str, float]:
    from safetensors.torch import save_file

    started = time.perf_counter()
    folder = Path(folder)
    total = epochs if epochs is not None else (QUICK_EPOCHS if quick else EPOCHS)
    x_train, y_train, x_test, y_test = _arrays(image)
    torch.manual_seed(MODEL_SEED)
    model = factory()
    model.train()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
    )
    # cosine decay over the whole run (per epoch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total, 1))
    generator = torch.Generator().manual_seed(DATA_SEED)
    saves = set(checkpoint_epochs(total))
    curve: list[dict[str, float]] = []
    zero_error_epoch = -1
    for epoch in console.track(range(total + 1), unit="epoch"):
        train_loss, train_acc = _evaluate(model, x_train, y_train)
        if train_acc == 1.0 and zero_error_epoch < 0:
            zero_error_epoch = epoch
        if epoch in saves:
            test_loss, test_acc = _evaluate(model, x_test, y_test)
            curve.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "train_acc": train_acc,
                    "test_loss": test_loss,
                    "test_acc": test_acc,
                }
            )
            state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
            save_file(state, str(folder / f"step_{epoch}.safetensors"))
        if epoch == total:
            break
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
    (folder / "metrics.json").write_text(json.dumps(curve, indent=1))
    final = curve[-1]
    return {
        "train_loss": final["train_loss"],
        "train_accuracy": final["train_acc"],
        "test_loss": final["test_loss"],
        "test_accuracy": final["test_acc"],
        "zero_error_epoch": zero_error_epoch,
        "epochs": total,
        "train_seconds": round(time.perf_counter() - started, 1),
    }


def _one_thread(factory, image: bool):
    def train(folder: Path, quick: bool = False, epochs: int | None = None) -> dict[str, float]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matmuls: one thread is fastest on a busy machine
        try:
            return _train(folder, quick, factory, image, epochs)
        finally:
            torch.set_num_threads(threads)

    return train


train_mlp = _one_thread(mlp, image=False)
train_cnn = _one_thread(cnn, image=True)
