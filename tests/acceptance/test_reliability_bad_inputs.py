"""Every case of the bad-input corpus gets its answer, and good orders keep flowing."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.bad_inputs import corpus

pytestmark = pytest.mark.slow
CASES = corpus.load()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, corpus.Outcome]:
    found, good = corpus.run(CASES, tmp_path_factory.mktemp("bad-inputs"))
    return {o.case.name: o for o in [*found, *good]}


def test_the_corpus_has_forty_cases_or_more_of_every_kind():
    assert len(CASES) >= 40
    assert {c.kind for c in CASES} == set(corpus.KINDS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_bad_input_gets_its_answer(case: corpus.Case, outcomes: dict[str, corpus.Outcome]):
    outcome = outcomes[case.name]
    assert outcome.ok, f"expected {case.expect!r}, got {outcome.got!r}"


def test_good_orders_in_the_same_run_complete(outcomes: dict[str, corpus.Outcome]):
    good = [o for name, o in outcomes.items() if name.startswith("good-")]
    assert len(good) == 5
    assert [o.got for o in good] == ["Completed"] * 5


def test_matching_needs_the_same_kind_of_answer_and_the_text():
    assert corpus.matches("exit 2: bad header", "exit 2: f.csv:1: bad header (missing x)")
    assert not corpus.matches("exit 2: bad header", "exit 1: bad header")
    assert not corpus.matches("Fallout: no rule", "Completed")
    assert corpus.matches("Completed", "Completed")


def test_a_case_file_that_is_missing_is_refused(tmp_path: Path):
    manifest = tmp_path / "cases.yaml"
    manifest.write_text("- {name: x, kind: rules, file: rules/nope.yaml, expect: 'exit 2: x'}\n")
    with pytest.raises(ValueError, match="no file"):
        corpus.load(manifest)
