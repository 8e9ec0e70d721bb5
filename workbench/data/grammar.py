"""The `grammar-lm` dataset: English-like text from a probabilistic template grammar with latent
variables per example and per word (see datasets/grammar-lm.md).

How the data are generated (all randomness from `numpy.random.default_rng(seed)`):

0. Example i uses row i of `rng.random((n rounded up to a multiple of 8, 22))`, so a smaller n
   gives a prefix of the examples of a larger one (same seed).
1. Latent classes: (topic, sentiment) pairs are balanced exactly: each block of 8 consecutive
   examples holds the 8 classes c in a random order (argsort of column 0 within the block);
   topic = c // 2 (index in `TOPICS`), sentiment = c % 2 (0 = negative, 1 = positive). Every
   sentence of an example shares its topic and sentiment.
2. Shape: a plan is drawn (column 1, inverse CDF) with fixed probabilities: one long sentence
   (one of the templates of >= 8 words, 35% of the mass) or two sentences (any pair of templates
   with <= 20 words in all, 65%), each template weighted by its `TEMPLATES` weight. An example
   has 8..20 words.
3. Words: slot j of the plan takes word floor(u * len(list)) of its list (u = column 2 + j):
   topic slots (NOUN, a `PLACES` noun after a preposition, VERB, ADJ) from the example's topic
   in `TOPIC_WORDS`, sentiment slots (ADJ, ADV, VERB) from the example's sentiment in
   `SENTIMENT_WORDS`, other slots from `FUNCTION_WORDS`. Every sentence holds at least one
   topic word and one sentiment word, no word of another topic or sentiment, and no negation,
   so both labels are unambiguous.

Text: lowercase words and punctuation ("." and ",") joined by single spaces; `text.split()` gives
the words. Each word has exactly one part of speech (asserted at import).

Labels per example: `topic` (0..3, `TOPICS`), `sentiment` (0 negative, 1 positive).
Labels per word (`word_labels`, -1 = none):
- `pos`: index in `POS_TAGS`;
- `clause_position`: 0-based index of the word in its clause; a clause ends with (and includes)
  ",", "and", "because" or "."; the next word has position 0;
- `topic`: the example's topic for topic words (from `TOPIC_WORDS`), else -1;
- `sentiment`: the example's sentiment for sentiment words (from `SENTIMENT_WORDS`), else -1.

`VOCABULARY` is the sorted list of every word the grammar can emit (for a word-level tokenizer).
"""

from __future__ import annotations

import itertools

import numpy as np

from workbench.data.registry import Example, register_dataset
from workbench.errors import InputError

DEFAULT_EXAMPLES = 20000
POS_TAGS = ["DET", "NOUN", "VERB", "ADJ", "ADV", "PREP", "PRON", "CONJ", "PUNCT", "AUX"]
TOPICS = ["animals", "food", "sports", "weather"]
SENTIMENTS = ["negative", "positive"]

# Topic-bearing content words: TOPIC_WORDS[topic][pos tag] (nouns, past-tense intransitive verbs,
# adjectives). Sentiment-neutral. The last 3 nouns of a topic are its places (`PLACES`): they fill
# the noun after a preposition; the other nouns fill the other noun slots.
TOPIC_WORDS: dict[str, dict[str, list[str]]] = {
    "animals": {
        "NOUN": ["dog", "cat", "horse", "rabbit", "fox", "owl", "meadow", "barn", "forest"],
        "VERB": ["barked", "purred", "galloped", "hopped", "howled", "grazed"],
        "ADJ": ["furry", "fluffy", "wild", "spotted", "striped", "feathered"],
    },
    "food": {
        "NOUN": ["soup", "bread", "cheese", "pizza", "salad", "curry", "kitchen", "oven", "table"],
        "VERB": ["simmered", "baked", "sizzled", "roasted", "fried", "steamed"],
        "ADJ": ["salty", "spicy", "crunchy", "creamy", "sour", "smoky"],
    },
    "sports": {
        "NOUN": ["team", "striker", "referee", "coach", "player", "field", "stadium", "court"],
        "VERB": ["scored", "sprinted", "dribbled", "raced", "trained", "competed"],
        "ADJ": ["athletic", "competitive", "defensive", "olympic", "professional", "varsity"],
    },
    "weather": {
        "NOUN": ["rain", "storm", "wind", "snow", "fog", "cloud", "sky", "valley", "coast"],
        "VERB": ["poured", "blew", "drizzled", "thundered", "swirled", "melted"],
        "ADJ": ["cloudy", "foggy", "windy", "humid", "chilly", "stormy"],
    },
}

# Sentiment-bearing words: SENTIMENT_WORDS[sentiment][pos tag]; shared by all topics.
SENTIMENT_WORDS: dict[int, dict[str, list[str]]] = {
    0: {
        "ADJ": ["awful", "terrible", "horrible", "dreadful", "nasty", "miserable", "lousy"],
        "ADV": ["sadly", "angrily", "badly", "miserably", "terribly", "poorly"],
        "VERB": ["hated", "disliked", "dreaded", "despised", "loathed", "resented"],
    },
    1: {
        "ADJ": ["great", "wonderful", "lovely", "excellent", "pleasant", "delightful", "superb"],
        "ADV": ["happily", "gladly", "cheerfully", "joyfully", "wonderfully", "beautifully"],
        "VERB": ["loved", "enjoyed", "adored", "praised", "admired", "liked"],
    },
}

# Function and neutral words, by slot: slot name -> (pos tag, words).
FUNCTION_WORDS: dict[str, tuple[str, list[str]]] = {
    "D": ("DET", ["the", "this", "that", "every", "our", "their"]),
    "P": ("PREP", ["in", "on", "near", "under", "across", "through", "over", "beside"]),
    "PR": ("PRON", ["i", "we", "they", "she", "he", "everyone"]),
    "DEG": ("ADV", ["very", "really", "quite", "truly", "so"]),
    "TIME": ("ADV", ["yesterday", "today", "tonight", "earlier"]),
    "LINK": ("VERB", ["seemed", "looked"]),
    "AUX": ("AUX", ["was"]),
    "AND": ("CONJ", ["and"]),
    "BEC": ("CONJ", ["because"]),
    ",": ("PUNCT", [","]),
    ".": ("PUNCT", ["."]),
}

PLACES: dict[str, list[str]] = {t: words["NOUN"][-3:] for t, words in TOPIC_WORDS.items()}

# Slots filled from the topic (N, L = place, V, A) or the sentiment (SA, SR, SV) of the example.
_TOPIC_SLOTS = {"N": "NOUN", "L": "NOUN", "V": "VERB", "A": "ADJ"}
_SENTIMENT_SLOTS = {"SA": "ADJ", "SR": "ADV", "SV": "VERB"}

# Sentence templates: (weight, slots).
TEMPLATES: list[tuple[float, str]] = [
    (1.0, "D SA N V P D L ."),
    (1.0, "D A N AUX DEG SA ."),
    (1.0, "PR SV D A N ."),
    (1.0, "D N V SR P D L ."),
    (1.0, "PR SV D N BEC D N AUX SA ."),
    (1.0, "D A N V SR AND D N LINK SA ."),
    (0.7, "TIME , D N V SR ."),
    (1.0, "P D A L , PR SV D N ."),
    (0.8, "D N LINK DEG SA ."),
    (1.0, "PR SV D SA N BEC D N V SR ."),
]
_P_SINGLE = 0.35
_MIN_WORDS, _MAX_WORDS = 8, 20
_CLAUSE_ENDS = {",", "and", "because", "."}


def _lexicon() -> dict[str, int]:
    """word -> POS id over every list; raises if a word is listed twice."""
    entries = [(w, pos) for t in TOPIC_WORDS.values() for pos, ws in t.items() for w in ws]
    entries += [(w, pos) for s in SENTIMENT_WORDS.values() for pos, ws in s.items() for w in ws]
    entries += [(w, pos) for pos, ws in FUNCTION_WORDS.values() for w in ws]
    lexicon: dict[str, int] = {}
    for word, pos in entries:
        if word in lexicon:
            raise AssertionError(f"word {word!r} is listed twice in the grammar's lexicon")
        lexicon[word] = POS_TAGS.index(pos)
    return lexicon


LEXICON: dict[str, int] = _lexicon()
VOCABULARY: list[str] = sorted(LEXICON)


def _slot_table() -> dict[str, list[tuple[list[str], int, int, int]]]:
    """slot -> per latent class c = 2 * topic + sentiment: (words, pos id, topic, sentiment)
    with the word labels the slot gives (-1 = none)."""
    table = {}
    for slot in {s for _, t in TEMPLATES for s in t.split()}:
        rows = []
        for c in range(2 * len(TOPICS)):
            topic, sentiment = divmod(c, 2)
            if slot in _TOPIC_SLOTS:
                pos, words = _TOPIC_SLOTS[slot], TOPIC_WORDS[TOPICS[topic]][_TOPIC_SLOTS[slot]]
                if pos == "NOUN":
                    places = PLACES[TOPICS[topic]]
                    words = places if slot == "L" else [w for w in words if w not in places]
                rows.append((words, POS_TAGS.index(pos), topic, -1))
            elif slot in _SENTIMENT_SLOTS:
                pos = _SENTIMENT_SLOTS[slot]
                words = SENTIMENT_WORDS[sentiment][pos]
                rows.append((words, POS_TAGS.index(pos), -1, sentiment))
            else:
                pos, words = FUNCTION_WORDS[slot]
                rows.append((words, POS_TAGS.index(pos), -1, -1))
        table[slot] = rows
    return table


def _plans() -> tuple[list[list[str]], np.ndarray]:
    """Every example shape (one long sentence or two sentences of <= 20 words) and its
    probability."""
    slots = [t.split() for _, t in TEMPLATES]
    weights = np.array([w for w, _ in TEMPLATES])
    singles = [i for i, s in enumerate(slots) if len(s) >= _MIN_WORDS]
    pairs = [
        (i, j)
        for i, j in itertools.product(range(len(slots)), repeat=2)
        if _MIN_WORDS <= len(slots[i]) + len(slots[j]) <= _MAX_WORDS
    ]
    p_single = weights[singles] / weights[singles].sum() * _P_SINGLE
    p_pair = np.array([weights[i] * weights[j] for i, j in pairs])
    p_pair = p_pair / p_pair.sum() * (1 - _P_SINGLE)
    plans = [slots[i] for i in singles] + [slots[i] + slots[j] for i, j in pairs]
    return plans, np.concatenate([p_single, p_pair])


_SLOTS = _slot_table()
_PLANS, _PLAN_P = _plans()


def clause_positions(words: list[str]) -> list[int]:
    """0-based position of each word in its clause; a clause ends with ",", "and", "because"
    or "." (the boundary word belongs to the clause it ends)."""
    out, k = [], 0
    for word in words:
        out.append(k)
        k = 0 if word in _CLAUSE_ENDS else k + 1
    return out


def generate(n_examples: int | None = None, seed: int = 0) -> list[Example]:
    """`n_examples` (default 20000) grammar-lm examples drawn with `seed` (see the module doc)."""
    n = DEFAULT_EXAMPLES if n_examples is None else n_examples
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise InputError(f"n_examples must be a positive integer, got {n_examples!r}")
    n_classes = 2 * len(TOPICS)
    n_rows = -(-n // n_classes) * n_classes
    # One row of uniforms per example, drawn in row order, so that a smaller n gives a prefix.
    u = np.random.default_rng(seed).random((n_rows, 2 + _MAX_WORDS))
    classes = np.argsort(u[:, 0].reshape(-1, n_classes), axis=1).ravel()[:n].tolist()
    cdf = np.cumsum(_PLAN_P)
    plans = np.minimum(np.searchsorted(cdf, u[:n, 1], side="right"), len(_PLANS) - 1).tolist()
    uniforms = u[:n, 2:].tolist()
    examples = []
    for c, plan, draws in zip(classes, plans, uniforms, strict=True):
        words, pos, topic, sentiment = [], [], [], []
        for slot, x in zip(_PLANS[plan], draws, strict=False):  # one draw per possible slot
            choices, p, t, s = _SLOTS[slot][c]
            words.append(choices[int(x * len(choices))])
            pos.append(p)
            topic.append(t)
            sentiment.append(s)
        examples.append(
            Example(
                text=" ".join(words),
                labels={"topic": c // 2, "sentiment": c % 2},
                word_labels={
                    "pos": pos,
                    "clause_position": clause_positions(words),
                    "topic": topic,
                    "sentiment": sentiment,
                },
            )
        )
    return examples


@register_dataset("grammar-lm")
def grammar_lm(n_examples: int | None, seed: int) -> list[Example]:
    """English-like sentences from a template grammar: 4 topics x 2 sentiments (balanced), with
    per-word part of speech, clause position, topic and sentiment labels; 20000 by default."""
    return generate(n_examples, seed)
