"""What the codebook family declares for others (`analyses.codebook.report`): the reader of
saved codebook models gives exactly a planted model's most used codes at a site, and only for
the store's model."""

from __future__ import annotations

import json

from analyses.codebook.model import Codebooks
from analyses.codebook.report import CODEBOOKS, read_codebook
from workbench.analysis.plugins import Link, SiteQuery

SITES = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]


def save(root, name: str, base: str, report: dict) -> None:
    books = Codebooks({SITES[0]: 4, SITES[1]: 4}, n_codes=16, k=2, base=base)
    books.report = report  # as training saves it
    books.save(root / name)


def test_the_reader_gives_the_planted_most_used_codes(tmp_path):
    save(tmp_path, "codebooks/toy-cb", "toy@100", {"top_codes": {SITES[1]: [[7, 0.5], [2, 0.25]]}})
    query = SiteQuery(tmp_path, "toy-grammar", "toy", SITES[1])
    report = read_codebook(tmp_path / "codebooks" / "toy-cb" / "codebook.json", query)
    assert report is not None
    assert report.folder == "codebooks/toy-cb"
    assert report.summary == "16 codes, k=2, base toy@100"
    assert report.link == Link("Codebooks", {"model": "codebooks/toy-cb", "site": SITES[1]})
    assert [(i.label, i.text, i.value) for i in report.items] == [
        ("code 7", " (50.0%)", 0.5),
        ("code 2", " (25.0%)", 0.25),
    ]
    assert report.items[0].link == Link(
        "Codebooks", {"model": "codebooks/toy-cb", "site": SITES[1], "code": 7}
    )
    at_0 = read_codebook(tmp_path / "codebooks" / "toy-cb" / "codebook.json",
                         SiteQuery(tmp_path, "toy-grammar", "toy", SITES[0]))  # fmt: skip
    assert at_0 is not None and at_0.items == ()  # no usage saved for that site


def test_the_reader_matches_the_base_model_or_the_store_name(tmp_path):
    save(tmp_path, "a", "other@100", {})
    save(tmp_path, "b", "mystore", {})
    save(tmp_path, "c", "toy", {})
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "codebook.json").write_text(json.dumps({"base": "toy"}))  # no sites
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "codebook.json").write_text("[1, 2")
    query = SiteQuery(tmp_path, "mystore", "toy", SITES[0])
    assert [r.folder for r in CODEBOOKS.reports_at(query)] == ["b", "c"]
    assert CODEBOOKS.reports_at(SiteQuery(tmp_path, "mystore", "toy", "blocks.9.x")) == []
    assert CODEBOOKS.file_name == "codebook.json"
