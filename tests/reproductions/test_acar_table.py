"""The ACAR table on a hand-made dataset (no shared data needed): every figure of the
table worked out by hand, the missing-model check, and the plain-text rendering."""

from __future__ import annotations

import pytest
from acar_tiny import SETUP, tiny

from orch_reproductions.acar_table import (
    COLUMNS,
    REFERENCE,
    ACARSetup,
    acar_table,
    measure,
    paper_table,
    render,
)
from traces import MemoryStore


async def test_the_table_on_the_tiny_dataset_is_what_the_hand_count_says() -> None:
    measured = await measure(tiny(), SETUP, MemoryStore(), parallel=3)
    table = {str(row[0]): row for row in measured.tables()[0].rows}
    assert list(table) == [
        "single: weak (probe)",
        "single: third (third)",
        "single: strong (strong)",
        "probes only: weak x3, majority",
        "two models, always",
        "three models, always",
        REFERENCE,
        "three models, always · judge=strong",
        "σ-routing · judge=strong",
    ]
    col = {c: i for i, c in enumerate(COLUMNS)}

    def get(label: str, column: str) -> object:
        return table[label][col[column]]

    accuracy = {label: get(label, "accuracy") for label in table}
    assert accuracy == {
        "single: weak (probe)": round(4 / 9, 3),  # t0 t6 t7 t8
        "single: third (third)": round(4 / 9, 3),  # t0 t1 t2 t8
        "single: strong (strong)": round(8 / 9, 3),
        "probes only: weak x3, majority": round(4 / 9, 3),
        "two models, always": round(6 / 9, 3),
        "three models, always": round(8 / 9, 3),
        REFERENCE: round(6 / 9, 3),
        "three models, always · judge=strong": round(8 / 9, 3),
        "σ-routing · judge=strong": round(6 / 9, 3),
    }
    # Calls: 3 probes (single), +2 verifiers (two-model), +3 ensemble (full); the rule judge
    # is not a model call. Cost: probe $0.001, strong $0.01, third $0.002 per call.
    assert get(REFERENCE, "calls/task") == round((2 * 3 + 3 * 5 + 4 * 6) / 9, 2) == 5.0
    assert get("three models, always", "calls/task") == 3.0
    assert get("two models, always", "calls/task") == 5.0
    assert get(REFERENCE, "$ total") == pytest.approx(2 * 0.003 + 3 * 0.015 + 4 * 0.016)
    assert get("three models, always", "$ total") == pytest.approx(9 * 0.013)
    assert get("two models, always", "$/task") == pytest.approx(0.015)
    assert get("single: weak (probe)", "$ total") == pytest.approx(0.009)
    shares = [get(REFERENCE, m) for m in ("single", "two-model", "full")]
    assert shares == [round(2 / 9, 3), round(3 / 9, 3), round(4 / 9, 3)]
    assert [get("two models, always", m) for m in ("single", "two-model", "full")] == [
        None,
        1.0,
        None,
    ]
    assert get("single: strong (strong)", "single") is None
    # Agreement-but-wrong: t1 (probes agree on B, gold A), for every row that samples probes.
    assert get(REFERENCE, "agree-but-wrong") == round(1 / 9, 3)
    assert get("probes only: weak x3, majority", "agree-but-wrong") == round(1 / 9, 3)
    assert get("two models, always", "agree-but-wrong") == 0.0  # both verifiers outvote B
    assert get("three models, always", "agree-but-wrong") is None  # no probes, no σ
    assert measured.recoverable() == (1, 1)
    # McNemar against σ-routing: three always is right alone on t1 and t3, never the reverse.
    assert get(REFERENCE, "p vs σ-routing") is None
    assert get("three models, always", "p vs σ-routing") == 0.5
    mcn = {str(row[0]): row for row in measured.tables()[1].rows}
    assert REFERENCE not in mcn
    assert mcn["three models, always"] == ["three models, always", 9, round(8 / 9, 3), 2, 0, 0.5]
    # The two judge rules are wrong on different tasks: majority on t4, strong on t8.
    wrong = {
        label: sorted(r.task for r in measured.report(label).results if r.score < 1.0)
        for label in (REFERENCE, "σ-routing · judge=strong")
    }
    assert wrong == {REFERENCE: ["t1", "t3", "t4"], "σ-routing · judge=strong": ["t1", "t3", "t8"]}


async def test_measure_names_a_missing_role_model() -> None:
    with pytest.raises(ValueError, match=r"has no model \['nobody'\]"):
        await measure(
            tiny(), ACARSetup(probe="probe", strong="nobody", third="third"), MemoryStore()
        )


def test_tables_render_as_plain_text() -> None:
    text = render(paper_table())
    lines = text.splitlines()
    assert lines[0].startswith("ACAR paper, as reported")
    assert lines[1].split() == [
        "configuration",
        "accuracy",
        "$",
        "total",
        "single",
        "two-model",
        "full",
    ]
    assert "σ-routing                0.556    20.34   0.329      0.213  0.458" in text
    assert lines[3].split()[-3:] == ["—", "—", "—"]
    assert lines[-1].startswith("note: 1,510 tasks")
    with pytest.raises(ValueError, match="at least one configuration"):
        acar_table([], title="empty")
