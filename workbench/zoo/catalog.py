"""Every zoo recipe, declared without importing torch: the training code is named by `Ref`
("module:function") and imported only when a recipe trains or a checkpoint loads. The constants a
recipe's card states (epochs, thresholds, the modulus) live here and the training modules import
them, so the card and the training cannot disagree."""

from __future__ import annotations

from workbench.zoo.recipe import Recipe, Ref, register

# 2 (issue 22): batch norm, the CNN's hidden layer, wd 5e-3, 200 epochs; v1 builds are rebuilt
DIGITS_RECIPE_VERSION = 2
DIGITS_EPOCHS = 200  # zero training error comes at epoch ~7: the rest is the terminal phase
TOY_THRESHOLD = 2.0  # nats/token, test cross-entropy (see datasets/zoo-toy-lm.md)
FSM_THRESHOLD = 0.9  # fraction of test predictions that are valid transitions (trigram: 0.755)
MOD_ADD_P = 53
MOD_ADD_TRAIN_FRACTION = 0.4

DIGITS_MLP = register(
    Recipe(
        name="digits-mlp",
        dataset="digits",
        kind="classifier",
        train=Ref("workbench.zoo.digits:train_mlp"),
        metric="test_accuracy",
        threshold=(">=", 0.95),
        sites="act2",
        summary=f"MLP 64-128-128-10 (batch norm) on 8x8 digits, {DIGITS_EPOCHS} epochs, "
        "the terminal phase past zero training error",
        module_factory=Ref("workbench.zoo.digits:mlp"),
        version=DIGITS_RECIPE_VERSION,
    )
)
DIGITS_CNN = register(
    Recipe(
        name="digits-cnn",
        dataset="digits",
        kind="classifier",
        train=Ref("workbench.zoo.digits:train_cnn"),
        metric="test_accuracy",
        threshold=(">=", 0.96),
        sites="act3",
        summary=f"2-conv CNN + hidden linear layer (batch norm) on 8x8 digits, {DIGITS_EPOCHS} "
        "epochs, the terminal phase past zero training error",
        module_factory=Ref("workbench.zoo.digits:cnn"),
        version=DIGITS_RECIPE_VERSION,
    )
)
TOY_LM = register(
    Recipe(
        name="toy-lm",
        dataset="grammar-lm",
        kind="causal-lm",
        train=Ref("workbench.zoo.lm:train_toy_lm"),
        metric="test_loss",
        threshold=("<=", TOY_THRESHOLD),
        sites="blocks.*.hook_resid_post",
        summary="4-layer GPT-NeoX (d_model 128) trained from scratch on grammar-lm",
    )
)
FSM_LM = register(
    Recipe(
        name="fsm-lm",
        dataset="fsm",
        kind="causal-lm",
        train=Ref("workbench.zoo.lm:train_fsm_lm"),
        metric="valid_accuracy",
        threshold=(">=", FSM_THRESHOLD),
        sites="blocks.*.hook_resid_post",
        summary="2-layer GPT-NeoX (d_model 64) on walks of a 100-state finite-state machine",
    )
)
MOD_ADD = register(
    Recipe(
        name="mod-add",
        dataset="modular-addition",
        kind="causal-lm",
        train=Ref("workbench.zoo.modadd:train"),
        metric="test_accuracy",
        threshold=(">=", 0.95),
        sites="blocks.0.hook_resid_post",
        summary=(
            f"1-layer GPT-NeoX grokking (a + b) mod {MOD_ADD_P} "
            f"({MOD_ADD_TRAIN_FRACTION:.0%} of pairs train): memorises, then generalises"
        ),
    )
)
