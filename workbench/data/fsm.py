"""The `fsm` dataset: token sequences emitted by a random finite-state machine, the setting of the
codebook-features paper (Tamkin, Taufeeque, Goodman 2023, "TokFSM"; see datasets/fsm.md).

The machine (`build_machine`, from `numpy.random.default_rng(machine_seed)`, machine_seed = 0
unless given, so that every corpus agrees with `build_machine()`):

- `n_states` hidden states (default 100, more than a small model's neurons per layer); state s
  has d_s outgoing edges, d_s uniform in [lo, hi] of `out_degree` (default 3..5);
- strongly connected: a random permutation orders the states in a cycle, and one edge of every
  state goes to its successor on the cycle; the other d_s - 1 edges go to d_s - 1 distinct
  states drawn uniformly from the rest (self-loops allowed); the edges of a state are shuffled;
- each edge emits a token: the d_s edges of a state emit d_s distinct tokens drawn uniformly from
  `n_tokens` (default 30), so the machine is deterministic given (state, token) and the hidden
  state is recoverable from the start state and the tokens so far; tokens are shared across
  states (in the default machine every token leads into 4 to 20 states), so the last token
  alone does not determine the state;
- edge probabilities: prob[s, :d_s] = (1 / d_s + Dirichlet(1, ..., 1)) / 2 (each >= 1 / (2 d_s)).

Tables are (n_states, max degree) arrays, padded with next_state = token = -1, prob = 0.

Sequences (`generate`): walk j uses row j of `numpy.random.default_rng(seed).random((n,
length + 1))`, so a smaller n gives a prefix of the walks of a larger one (same seed). Start in
state 0 (or, with `random_start=True`, in state floor(u[j, 0] * n_states), uniform); at step i
(of `length`, default 64) take edge k = #{cumsum(prob[s])[k'] <= u[j, i + 1]} of the current
state s (edge k with probability prob[s, k]), emit its token and move to its next state. All
walks step together (vectorised over examples).

Text: the tokens "t0".."t{n_tokens-1}" joined by single spaces; token id = index in
`vocabulary(n_tokens)` (id order, not sorted; `VOCABULARY` for the default 30 tokens).
Labels per example: `start_state`. Labels per word: `state` = hidden state *after* emitting the
word's token; `prev_state` = state before it (so prev_state[0] = start_state and
prev_state[i] = state[i - 1]).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from workbench.data.registry import Example, register_dataset
from workbench.errors import InputError

DEFAULT_EXAMPLES = 4000
N_STATES = 100
N_TOKENS = 30
OUT_DEGREE = (3, 5)
LENGTH = 64
MACHINE_SEED = 0


def vocabulary(n_tokens: int = N_TOKENS) -> list[str]:
    """Token names "t0".."t{n_tokens-1}" in id order."""
    return [f"t{i}" for i in range(n_tokens)]


VOCABULARY: list[str] = vocabulary(N_TOKENS)


@dataclass(frozen=True)
class FiniteStateMachine:
    """A probabilistic Mealy machine: from state s, edge k (k < out_degree[s]) is taken with
    probability prob[s, k], emits token[s, k] and leads to next_state[s, k]. Arrays are
    (n_states, max out degree); padding entries have next_state = token = -1, prob = 0."""

    n_states: int
    n_tokens: int
    next_state: np.ndarray
    token: np.ndarray
    prob: np.ndarray
    out_degree: np.ndarray
    seed: int

    def step(self, state: int, token: int) -> int:
        """The state reached from `state` by emitting `token` (InputError if no edge emits it)."""
        hits = np.flatnonzero(self.token[state] == token)
        if len(hits) != 1:
            raise InputError(f"state {state} has no edge emitting token {token}")
        return int(self.next_state[state, hits[0]])

    def replay(self, tokens: list[int], start_state: int = 0) -> list[int]:
        """The states after each token of `tokens`, from `start_state`."""
        states, state = [], start_state
        for tok in tokens:
            state = self.step(state, tok)
            states.append(state)
        return states


def _degree_range(out_degree: int | tuple[int, int]) -> tuple[int, int]:
    lo, hi = (out_degree, out_degree) if isinstance(out_degree, int) else tuple(out_degree)
    return int(lo), int(hi)


@lru_cache(maxsize=16)
def _build(n_states: int, n_tokens: int, lo: int, hi: int, seed: int) -> FiniteStateMachine:
    if n_states < 2 or n_tokens < 2:
        raise InputError(f"need n_states >= 2 and n_tokens >= 2, got {n_states}, {n_tokens}")
    if not 1 <= lo <= hi <= min(n_tokens, n_states):
        raise InputError(
            f"out_degree must satisfy 1 <= lo <= hi <= min(n_tokens, n_states), got ({lo}, {hi})"
        )
    rng = np.random.default_rng(seed)
    degree = rng.integers(lo, hi + 1, size=n_states)
    cycle = rng.permutation(n_states)
    successor = np.empty(n_states, dtype=np.int64)
    successor[cycle] = np.roll(cycle, -1)
    next_state = np.full((n_states, hi), -1, dtype=np.int64)
    token = np.full((n_states, hi), -1, dtype=np.int64)
    prob = np.zeros((n_states, hi))
    for s in range(n_states):
        d = int(degree[s])
        others = np.delete(np.arange(n_states), successor[s])
        targets = np.concatenate([[successor[s]], rng.choice(others, size=d - 1, replace=False)])
        next_state[s, :d] = rng.permutation(targets)
        token[s, :d] = rng.choice(n_tokens, size=d, replace=False)
        prob[s, :d] = (1.0 / d + rng.dirichlet(np.ones(d))) / 2.0
    for array in (next_state, token, prob, degree):
        array.setflags(write=False)
    return FiniteStateMachine(n_states, n_tokens, next_state, token, prob, degree, seed)


def build_machine(
    n_states: int = N_STATES,
    n_tokens: int = N_TOKENS,
    out_degree: int | tuple[int, int] = OUT_DEGREE,
    seed: int = MACHINE_SEED,
) -> FiniteStateMachine:
    """The random machine for these parameters (see the module doc); cached, arrays read-only."""
    lo, hi = _degree_range(out_degree)
    return _build(int(n_states), int(n_tokens), lo, hi, int(seed))


def sample(
    machine: FiniteStateMachine, n: int, length: int, seed: int, random_start: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start (n,), tokens (n, length), states (n, length)): `n` walks of `length` steps drawn
    with `seed`; states[:, i] is the state after emitting tokens[:, i]."""
    # One row of uniforms per walk (column 0: start state, column i + 1: step i), drawn in row
    # order, so that a smaller n gives a prefix of the walks of a larger one.
    u = np.random.default_rng(seed).random((n, length + 1))
    if random_start:
        state = np.minimum((u[:, 0] * machine.n_states).astype(np.int64), machine.n_states - 1)
    else:
        state = np.zeros(n, dtype=np.int64)
    start = state.copy()
    cum = np.cumsum(machine.prob, axis=1)
    cols = np.arange(cum.shape[1])
    cum[cols[None, :] >= machine.out_degree[:, None] - 1] = 1.0  # no float shortfall, no padding
    tokens = np.empty((n, length), dtype=np.int64)
    states = np.empty((n, length), dtype=np.int64)
    for i in range(length):
        k = (u[:, i + 1, None] >= cum[state]).sum(axis=1)
        tokens[:, i] = machine.token[state, k]
        state = machine.next_state[state, k]
        states[:, i] = state
    return start, tokens, states


def generate(
    n_examples: int | None = None,
    seed: int = 0,
    *,
    n_states: int = N_STATES,
    n_tokens: int = N_TOKENS,
    out_degree: int | tuple[int, int] = OUT_DEGREE,
    length: int = LENGTH,
    machine_seed: int = MACHINE_SEED,
    random_start: bool = False,
) -> list[Example]:
    """`n_examples` (default 4000) sequences of `length` tokens from
    `build_machine(n_states, n_tokens, out_degree, machine_seed)`, drawn with `seed`."""
    n = DEFAULT_EXAMPLES if n_examples is None else n_examples
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise InputError(f"n_examples must be a positive integer, got {n_examples!r}")
    if length <= 0:
        raise InputError(f"length must be positive, got {length}")
    machine = build_machine(n_states, n_tokens, out_degree, machine_seed)
    start, tokens, states = sample(machine, n, length, seed, random_start)
    prev = np.concatenate([start[:, None], states[:, :-1]], axis=1)
    names = np.array(vocabulary(n_tokens))
    return [
        Example(
            text=" ".join(words),
            labels={"start_state": s0},
            word_labels={"state": st, "prev_state": pv},
        )
        for words, s0, st, pv in zip(
            names[tokens].tolist(), start.tolist(), states.tolist(), prev.tolist(), strict=True
        )
    ]


def as_arrays(examples: list[Example], n_tokens: int = N_TOKENS) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, states): int64 (n, length) token ids (index in `vocabulary(n_tokens)`) and
    states after each token, for training without a tokenizer. Sequences must share a length."""
    index = {word: i for i, word in enumerate(vocabulary(n_tokens))}
    try:
        tokens = np.array([[index[w] for w in e.text.split()] for e in examples], dtype=np.int64)
        states = np.array([e.word_labels["state"] for e in examples], dtype=np.int64)
    except (KeyError, ValueError) as err:
        raise InputError(f"not fsm examples of one length over {n_tokens} tokens: {err}") from err
    return tokens, states


@register_dataset("fsm")
def fsm(n_examples: int | None, seed: int) -> list[Example]:
    """4000 sequences of 64 tokens from the fixed 100-state machine (machine seed 0), with the
    hidden state after each token; see `generate` for other machines."""
    return generate(n_examples, seed)
