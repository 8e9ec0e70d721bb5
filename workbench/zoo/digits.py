"""Zoo recipes `digits-mlp` and `digits-cnn`: small classifiers on the 8x8 `digits` dataset,
trained far past zero training error into the terminal phase of training, where neural collapse
appears (Papyan, Han & Donoho 2020). See datasets/zoo-digits.md.

Checkpoints are state dicts `step_<epoch>.safetensors` of `mlp()` / `cnn()` (the recipes'
`module_factory`), so `CheckpointSeries(folder, build=mlp)` or `workbench.zoo.load_series(name)`
loads them. Every layer is its own submodule, so every site is distinct:

- `digits-mlp` (input (n, 64)): `fc1 -> bn1 -> act1 -> fc2 -> bn2 -> act2 -> head`; the
  penultimate features (the last-layer features of neural collapse) are the site `act2` (128-d).
- `digits-cnn` (input (n, 1, 8, 8)): `conv1 -> bn1 -> act1 -> pool1 -> conv2 -> bn2 -> act2 ->
  pool2 -> flatten -> fc3 -> bn3 -> act3 -> head`; the penultimate features are the site `act3`
  (128-d).

The recipe follows the paper's: batch norm after every hidden layer (all of Papyan et al.'s
networks have it), SGD with momentum 0.9, weight decay, a decaying learning rate, and many epochs
after zero training error. Without batch norm these small networks freeze once the training loss
is tiny: NC1 stayed at 0.57 (MLP) from zero error (epoch 50) to epoch 300 with the recipe before
issue 22. The weight decay is 10x that recipe's 5e-4 (the usual value for such runs): ours take
~2,200 SGD steps, not the ~10^5 of the paper's, and weight decay pulls on a time scale of
1 / (lr x wd) steps.
"""

from __future__ import annotations

import json
import math
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
WEIGHT_DECAY = 5e-3
# checkpoints: after every epoch to 10 (training error reaches zero there), every 5 to 50 (NC
# falls fastest early in the terminal phase), then every 10
CHECKPOINT_SPACING = ((10, 1), (50, 5), (None, 10))  # (up to epoch, every)


class DigitsMLP(nn.Module):
    """64 -> 128 -> 128 -> 10 with ReLUs; penultimate features at `act2`.

    `plain=False` (the zoo's): batch norm `bn1`, `bn2` before each ReLU. `plain=True`: the
    architecture without them (the zoo's before issue 22, D = 26,122; the objective-landscape
    analysis trains it, as Li et al. train plain networks)."""

    def __init__(self, plain: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.bn1: nn.Module = nn.Identity() if plain else nn.BatchNorm1d(128)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(128, 128)
        self.bn2: nn.Module = nn.Identity() if plain else nn.BatchNorm1d(128)
        self.act2 = nn.ReLU()
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)
        x = self.act1(self.bn1(self.fc1(x)))
        return self.head(self.act2(self.bn2(self.fc2(x))))


class DigitsCNN(nn.Module):
    """Two 3x3 conv layers (16, 32 channels) with max pooling on (1, 8, 8) images, then a hidden
    linear layer (128 -> 128) and the linear head; penultimate features at `act3` (128-d).

    `plain=False` (the zoo's): batch norm `bn1`, `bn2`, `bn3` before each ReLU and the hidden
    layer `fc3`. `plain=True`: neither (the zoo's before issue 22, D = 6,090; the head reads
    `flatten`): the objective-landscape analysis trains it."""

    def __init__(self, plain: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1: nn.Module = nn.Identity() if plain else nn.BatchNorm2d(16)
        self.act1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)  # 8x8 -> 4x4
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2: nn.Module = nn.Identity() if plain else nn.BatchNorm2d(32)
        self.act2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)  # 4x4 -> 2x2
        self.flatten = nn.Flatten()  # 32 x 2 x 2 = 128
        self.plain = plain
        if not plain:
            self.fc3 = nn.Linear(128, 128)
            self.bn3 = nn.BatchNorm1d(128)
            self.act3 = nn.ReLU()
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), 1, 8, 8)
        x = self.pool1(self.act1(self.bn1(self.conv1(x))))
        x = self.flatten(self.pool2(self.act2(self.bn2(self.conv2(x)))))
        if not self.plain:
            x = self.act3(self.bn3(self.fc3(x)))
        return self.head(x)


def mlp(plain: bool = False) -> DigitsMLP:
    """A fresh (untrained) `digits-mlp` module, the recipe's `module_factory` (`plain`: see
    `DigitsMLP`)."""
    return DigitsMLP(plain)


def cnn(plain: bool = False) -> DigitsCNN:
    """A fresh (untrained) `digits-cnn` module, the recipe's `module_factory` (`plain`: see
    `DigitsCNN`)."""
    return DigitsCNN(plain)


def checkpoint_epochs(total: int) -> list[int]:
    """Checkpoint epochs of a `total`-epoch run, spaced by `CHECKPOINT_SPACING` (0..10, 15..50
    by 5, then by 10), plus the last: denser where zero training error comes and the terminal
    phase begins."""
    epochs, start = {0, total}, 0
    for end, every in CHECKPOINT_SPACING:
        stop = total if end is None else min(end, total)
        epochs.update(range(start, stop + 1, every))
        start = stop
    return sorted(epochs)


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


def _learning_rate(epoch: int, total: int) -> float:
    """Cosine decay from `LR` to 0 over `total` epochs (per epoch)."""
    return LR * 0.5 * (1.0 + math.cos(math.pi * epoch / max(total, 1)))


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
    generator = torch.Generator().manual_seed(DATA_SEED)
    saves = set(checkpoint_epochs(total))
    curve: list[dict[str, float]] = []
    zero_error_epoch = -1
    for epoch in console.track(range(total + 1), unit="epoch"):
        train_loss, train_acc = _evaluate(model, x_train, y_train)
        first_zero = train_acc == 1.0 and zero_error_epoch < 0
        if first_zero:
            zero_error_epoch = epoch
        if epoch in saves or first_zero:  # the terminal phase's first checkpoint, always
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
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(epoch, total)
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            if len(batch) < 2:  # batch norm needs two rows; 1347 = 10 x 128 + 67 never hits it
                continue
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    (folder / "metrics.json").write_text(json.dumps(curve, indent=1))
    final = curve[-1]
    if zero_error_epoch < 0 and not quick:
        console.warn(
            f"zoo: {folder.name} never reached zero training error in {total} epochs (train "
            f"accuracy {final['train_acc']:.4f}): no terminal phase, neural collapse will not show"
        )
    return {
        "train_loss": final["train_loss"],
        "train_accuracy": final["train_acc"],
        "test_loss": final["test_loss"],
        "test_accuracy": final["test_acc"],
        "zero_error_epoch": zero_error_epoch,
        "terminal_epochs": total - zero_error_epoch if zero_error_epoch >= 0 else 0,
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
