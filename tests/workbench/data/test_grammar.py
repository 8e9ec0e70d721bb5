"""The grammar-lm generator: determinism, label correctness, balance, vocabulary and speed."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from workbench.data import Example, grammar, load_dataset

BOUNDARIES = {",", "and", "because", "."}


@pytest.fixture(scope="module")
def examples() -> list[Example]:
    return grammar.generate(10000, seed=7)


def inverse_lexicon() -> dict[str, list[tuple[str, str, object]]]:
    """word -> every (pos tag, kind, class) entry of the module's word lists."""
    entries: dict[str, list[tuple[str, str, object]]] = {}
    for topic, by_pos in grammar.TOPIC_WORDS.items():
        for pos, words in by_pos.items():
            for w in words:
                entries.setdefault(w, []).append((pos, "topic", grammar.TOPICS.index(topic)))
    for sentiment, by_pos in grammar.SENTIMENT_WORDS.items():
        for pos, words in by_pos.items():
            for w in words:
                entries.setdefault(w, []).append((pos, "sentiment", sentiment))
    for pos, words in grammar.FUNCTION_WORDS.values():
        for w in words:
            entries.setdefault(w, []).append((pos, "function", None))
    return entries


def test_lexicon_gives_each_word_exactly_one_entry():
    entries = inverse_lexicon()
    ambiguous = {w: e for w, e in entries.items() if len(e) != 1}
    assert not ambiguous
    assert set(grammar.POS_TAGS) >= {e[0][0] for e in entries.values()}
    assert {w: grammar.POS_TAGS.index(e[0][0]) for w, e in entries.items()} == grammar.LEXICON


def test_vocabulary_is_sorted_and_covers_every_emitted_word(examples):
    vocab = grammar.VOCABULARY
    assert vocab == sorted(set(vocab))
    assert set(vocab) == set(inverse_lexicon())
    emitted = {w for e in examples for w in e.text.split()}
    assert emitted <= set(vocab)
    assert len(emitted) > 0.9 * len(vocab)  # the grammar uses (nearly) its whole lexicon


def test_same_seed_same_examples_and_different_seed_different():
    a = grammar.generate(300, seed=1)
    assert a == grammar.generate(300, seed=1)
    assert [e.text for e in a] != [e.text for e in grammar.generate(300, seed=2)]
    assert load_dataset("grammar-lm", 300, 1) == a


def test_fewer_examples_are_a_prefix_and_every_prefix_is_balanced():
    many = grammar.generate(403, seed=4)
    assert grammar.generate(37, seed=4) == many[:37]
    classes = Counter(2 * e.labels["topic"] + e.labels["sentiment"] for e in many)
    assert sorted(classes) == list(range(8))
    assert max(classes.values()) - min(classes.values()) <= 1


def test_text_format_and_lengths(examples):
    for e in examples:
        words = e.text.split()
        assert e.text == " ".join(words) and e.text == e.text.lower()
        assert 8 <= len(words) <= 20
        assert words[-1] == "."
        assert set(e.word_labels) == {"pos", "clause_position", "topic", "sentiment"}
        for name, values in e.word_labels.items():
            assert len(values) == len(words), name
        assert set(e.labels) == {"topic", "sentiment"}


def test_pos_labels_match_the_lexicon(examples):
    entries = inverse_lexicon()
    for e in examples:
        for word, pos in zip(e.text.split(), e.word_labels["pos"], strict=True):
            assert grammar.POS_TAGS[pos] == entries[word][0][0], (word, e.text)


def test_clause_position_restarts_after_boundaries(examples):
    for e in examples:
        words, cp = e.text.split(), e.word_labels["clause_position"]
        assert cp[0] == 0
        for i in range(1, len(words)):
            expected = 0 if words[i - 1] in BOUNDARIES else cp[i - 1] + 1
            assert cp[i] == expected, (i, e.text, cp)
    assert grammar.clause_positions(["we", "loved", "it", ",", "and", "so", ".", "x"]) == [
        0,
        1,
        2,
        3,
        0,
        0,
        1,
        0,
    ]


def test_topic_and_sentiment_words_agree_with_the_example(examples):
    entries = inverse_lexicon()
    for e in examples:
        topic, sentiment = e.labels["topic"], e.labels["sentiment"]
        n_topic = n_sentiment = 0
        for word, wt, ws in zip(
            e.text.split(), e.word_labels["topic"], e.word_labels["sentiment"], strict=True
        ):
            _, kind, cls = entries[word][0]
            if kind == "topic":
                assert cls == topic and wt == topic and ws == -1, (word, e.text)
                n_topic += 1
            elif kind == "sentiment":
                assert cls == sentiment and ws == sentiment and wt == -1, (word, e.text)
                n_sentiment += 1
            else:
                assert wt == -1 and ws == -1, (word, e.text)
        assert n_topic > 0 and n_sentiment > 0
        # every sentence carries the topic and the sentiment
        kinds: set[str] = set()
        for word in e.text.split():
            kinds.add(entries[word][0][1])
            if word == ".":
                assert {"topic", "sentiment"} <= kinds, e.text
                kinds = set()


def test_class_balance_within_5_percent(examples):
    n = len(examples)
    topics = Counter(e.labels["topic"] for e in examples)
    sentiments = Counter(e.labels["sentiment"] for e in examples)
    assert set(topics) == set(range(len(grammar.TOPICS)))
    assert set(sentiments) == {0, 1}
    for count in topics.values():
        assert abs(count - n / 4) <= 0.05 * n / 4
    for count in sentiments.values():
        assert abs(count - n / 2) <= 0.05 * n / 2
    # sentence shapes vary: one- and two-sentence examples both occur often
    shapes = Counter(e.text.split().count(".") for e in examples)
    assert set(shapes) == {1, 2}
    assert abs(shapes[1] / n - 0.35) < 0.03  # the documented share of one-sentence examples


def test_default_size_and_speed():
    start = time.perf_counter()
    examples = load_dataset("grammar-lm", None, 0)
    elapsed = time.perf_counter() - start
    assert len(examples) == 20000
    assert elapsed < 5.0, f"20000 examples took {elapsed:.2f}s"


def test_invalid_size_is_rejected():
    with pytest.raises(ValueError):
        grammar.generate(0, 0)
