"""Reading a dataset back for people: checks, reports, preview sheets."""

#: How a report's problem line that says only "not every sample is there yet" starts: a run in
#: progress, an interrupted one or a shard is incomplete, not damaged (``blurgen inspect`` exits 0).
INCOMPLETE = "incomplete: "


def incomplete_problem(written: int, planned: int, what: str) -> str:
    """The problem line of a report on a dataset holding ``written`` of ``planned`` ``what``."""
    return f"{INCOMPLETE}only {written} of {planned} {what}"


def damage(problems: list[str]) -> list[str]:
    """The problems of a report that are damage (all but its incompleteness)."""
    return [problem for problem in problems if not problem.startswith(INCOMPLETE)]
