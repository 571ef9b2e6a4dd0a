"""RecordedSet.match: the exact-prompt fast path picks what the substring scan picks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agents.models import ChatMessage, ChatRequest
from agents.models._recorded import RecordedItem, RecordedSet


def _request(prompt: str) -> ChatRequest:
    return ChatRequest(model="m", messages=[ChatMessage(role="user", content=prompt)])


def _scan(data: RecordedSet, prompt: str) -> RecordedItem | None:
    for item in sorted(data.items, key=lambda i: -len(i.question)):
        if item.question in prompt:
            return item
    return None


def test_exact_prompt_of_a_question_inside_another() -> None:
    data = RecordedSet(
        items=[
            RecordedItem(id="long", question="What is 2+2? Show your work."),
            RecordedItem(id="short", question="What is 2+2?"),
            RecordedItem(id="dup", question="What is 2+2?"),
        ]
    )
    assert data.match(_request("What is 2+2?")).id == "short"  # type: ignore[union-attr]
    assert data.match(_request("What is 2+2? Show your work.")).id == "long"  # type: ignore[union-attr]
    wrapped = data.match(_request("Question:\nWhat is 2+2? Show your work.\nAnswer:"))
    assert wrapped is not None and wrapped.id == "long"
    assert data.match(_request("Something else")) is None


@given(
    questions=st.lists(st.text(alphabet="ab ", min_size=1, max_size=6), min_size=1, max_size=8),
    prompt=st.text(alphabet="ab ", min_size=0, max_size=10),
)
def test_match_equals_the_scan(questions: list[str], prompt: str) -> None:
    data = RecordedSet(items=[RecordedItem(id=str(i), question=q) for i, q in enumerate(questions)])
    for p in [prompt, *questions]:
        got, want = data.match(_request(p)), _scan(data, p)
        assert (got.id if got else None) == (want.id if want else None)
