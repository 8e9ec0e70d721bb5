"""The fsm generator: machine structure, determinism, recoverable states, transition statistics,
token ambiguity and speed."""

from __future__ import annotations

import time

import numpy as np
import pytest

from workbench.data import Example, fsm, load_dataset


@pytest.fixture(scope="module")
def machine() -> fsm.FiniteStateMachine:
    return fsm.build_machine()


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return fsm.generate(None, seed=3)


def reachable(adjacency: list[set[int]], start: int) -> set[int]:
    seen, stack = {start}, [start]
    while stack:
        for t in adjacency[stack.pop()] - seen:
            seen.add(t)
            stack.append(t)
    return seen


def test_machine_structure(machine):
    assert machine.n_states == 100 > 64 and machine.n_tokens == 30
    n, k = machine.next_state.shape
    assert machine.token.shape == machine.prob.shape == (n, k) == (100, 5)
    assert set(machine.out_degree.tolist()) <= {3, 4, 5}
    edges: list[set[int]] = [set() for _ in range(n)]
    back: list[set[int]] = [set() for _ in range(n)]
    for s in range(n):
        d = machine.out_degree[s]
        tokens = machine.token[s, :d].tolist()
        assert len(set(tokens)) == d and all(0 <= t < 30 for t in tokens)  # deterministic
        assert np.all(machine.prob[s, :d] > 0) and np.isclose(machine.prob[s].sum(), 1.0)
        assert np.all(machine.token[s, d:] == -1) and np.all(machine.next_state[s, d:] == -1)
        assert np.all(machine.prob[s, d:] == 0)
        for t in machine.next_state[s, :d].tolist():
            edges[s].add(t)
            back[t].add(s)
    # strongly connected: every state reaches and is reached from state 0
    assert reachable(edges, 0) == set(range(n)) == reachable(back, 0)


def test_machine_is_fixed_by_its_seed(machine):
    rebuilt = fsm._build.__wrapped__(100, 30, 3, 5, 0)  # bypass the cache
    for name in ("next_state", "token", "prob", "out_degree"):
        assert np.array_equal(getattr(machine, name), getattr(rebuilt, name))
    other = fsm.build_machine(seed=1)
    assert not np.array_equal(machine.token, other.token)
    assert fsm.generate(20, 0, machine_seed=1) != fsm.generate(20, 0)


def test_same_seed_same_examples_and_different_seed_different():
    a = fsm.generate(200, seed=5)
    assert a == fsm.generate(200, seed=5)
    assert [e.text for e in a] != [e.text for e in fsm.generate(200, seed=6)]
    assert load_dataset("fsm", 200, 5) == a


@pytest.mark.parametrize("random_start", [False, True])
def test_fewer_examples_are_a_prefix(random_start):
    many = fsm.generate(300, seed=2, random_start=random_start)
    assert fsm.generate(41, seed=2, random_start=random_start) == many[:41]


def test_format_and_vocabulary(examples):
    assert [f"t{i}" for i in range(30)] == fsm.VOCABULARY
    vocab = set(fsm.VOCABULARY)
    for e in examples[:500]:
        words = e.text.split()
        assert len(words) == 64 and e.text == " ".join(words)
        assert set(words) <= vocab
        assert len(e.word_labels["state"]) == len(e.word_labels["prev_state"]) == 64
        assert e.labels == {"start_state": 0}
    tokens, states = fsm.as_arrays(examples)
    assert tokens.shape == states.shape == (4000, 64)


@pytest.mark.parametrize("random_start", [False, True])
def test_replaying_the_tokens_reproduces_the_states(machine, random_start):
    examples = fsm.generate(300, seed=11, random_start=random_start)
    starts = {e.labels["start_state"] for e in examples}
    assert (len(starts) > 50) if random_start else starts == {0}
    for e in examples:
        tokens = [int(w[1:]) for w in e.text.split()]
        state, states = e.labels["start_state"], []
        for tok in tokens:
            (k,) = np.flatnonzero(machine.token[state] == tok)  # exactly one edge emits tok
            state = int(machine.next_state[state, k])
            states.append(state)
        assert states == e.word_labels["state"]
        assert e.word_labels["prev_state"] == [e.labels["start_state"]] + states[:-1]
        assert machine.replay(tokens, e.labels["start_state"]) == states


def chi_square(counts: np.ndarray, prob: np.ndarray, degree: np.ndarray) -> tuple[float, int]:
    stat, dof = 0.0, 0
    for s in range(len(degree)):
        d, visits = degree[s], counts[s].sum()
        if visits == 0:
            continue
        expected = visits * prob[s, :d]
        stat += float((((counts[s, :d] - expected) ** 2) / expected).sum())
        dof += d - 1
    return stat, dof


def test_empirical_transition_frequencies_match_prob(machine, examples):
    tokens, states = fsm.as_arrays(examples)
    prev = np.array([e.word_labels["prev_state"] for e in examples])
    edge_of = np.full((machine.n_states, machine.n_tokens), -1)
    for s in range(machine.n_states):
        edge_of[s, machine.token[s, : machine.out_degree[s]]] = np.arange(machine.out_degree[s])
    k = edge_of[prev, tokens]
    assert np.all(k >= 0) and np.array_equal(machine.next_state[prev, k], states)
    counts = np.zeros(machine.prob.shape)
    np.add.at(counts, (prev.ravel(), k.ravel()), 1)
    assert (counts.sum(axis=1) > 0).sum() > 64  # the walks visit more than 64 states
    stat, dof = chi_square(counts, machine.prob, machine.out_degree)
    assert stat < dof + 6 * np.sqrt(2 * dof), (stat, dof)
    # the test has power: uniform edge probabilities would be rejected
    uniform = np.where(machine.prob > 0, 1.0 / machine.out_degree[:, None], 0.0)
    stat_uniform, _ = chi_square(counts, uniform, machine.out_degree)
    assert stat_uniform > dof + 6 * np.sqrt(2 * dof), (stat_uniform, dof)


def test_last_token_does_not_determine_the_state(examples):
    tokens, states = fsm.as_arrays(examples)
    targets: dict[int, set[int]] = {}
    for tok, st in zip(tokens.ravel().tolist(), states.ravel().tolist(), strict=True):
        targets.setdefault(tok, set()).add(st)
    ambiguous = [tok for tok, sts in targets.items() if len(sts) >= 2]
    assert len(ambiguous) >= 1
    assert len(ambiguous) > 20  # in fact nearly every token leads into several states


def test_default_size_and_speed():
    fsm.build_machine()  # the machine is built once and cached
    start = time.perf_counter()
    examples = load_dataset("fsm", None, 0)
    elapsed = time.perf_counter() - start
    assert len(examples) == 4000
    assert elapsed < 5.0, f"4000 x 64 took {elapsed:.2f}s"


def test_invalid_parameters_are_rejected():
    with pytest.raises(ValueError):
        fsm.build_machine(n_tokens=4, out_degree=(3, 5))
    with pytest.raises(ValueError):
        fsm.generate(0, 0)
    with pytest.raises(ValueError):
        fsm.build_machine().step(0, -5)
