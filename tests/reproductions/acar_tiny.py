"""A hand-made dataset for the tests of the ACAR table's parts (no shared data needed):
nine tasks whose probe, strong and third responses cover every branch of σ-routing, and the
role mapping onto its models. Imported by name (pytest puts this
test folder on ``sys.path``)."""

from __future__ import annotations

from orch_reproductions.acar_table import ACARSetup
from orch_reproductions.mot_views import pad_samples
from routers.eval import Dataset, Sample, Task

COST = {"probe": 0.001, "strong": 0.01, "third": 0.002}

# id: (probe samples, strong, third, gold); '' is a response with no answer.
TASKS: dict[str, tuple[list[str], str, str, str]] = {
    "t0": (["A", "A", "A"], "A", "A", "A"),  # σ=0, right
    "t1": (["B", "B", "B"], "A", "A", "A"),  # σ=0, agreement-but-wrong
    "t2": (["A", "B", "A"], "B", "B", "B"),  # σ=0.5, both verifiers overturn the probes
    "t3": (["A", "B", "A"], "B", "C", "B"),  # σ=0.5, verifiers split: probe majority stays
    "t4": (["A", "B", "C"], "D", "A", "D"),  # σ=1, probe and third outvote the strong model
    "t5": (["A", "B", "C"], "D", "E", "D"),  # σ=1, all differ: the strong model's answer
    "t6": (["A"], "A", "B", "A"),  # failed probes dropped by the source: padded -> σ=1
    "t7": (["A", "", "A"], "A", "C", "A"),  # an unreadable probe is its own answer: σ=0.5
    "t8": (["A", "B", "C"], "X", "A", "A"),  # σ=1, the strong model is wrong
}


def sample(answer: str, gold: str, model: str) -> Sample:
    return Sample(
        answer=answer or None, score=float(answer == gold), cost_usd=COST[model], text=answer
    )


def tiny() -> Dataset:
    tasks = [
        Task(
            id=tid,
            question=f"Question {tid}: what is the answer?",
            gold=gold,
            responses={
                "probe": [sample(a, gold, "probe") for a in probes],
                "strong": [sample(strong, gold, "strong")],
                "third": [sample(third, gold, "third")],
            },
        )
        for tid, (probes, strong, third, gold) in TASKS.items()
    ]
    return pad_samples(Dataset(name="tiny-acar", tasks=tasks), "probe", 3)


SETUP = ACARSetup(probe="probe", strong="strong", third="third")
