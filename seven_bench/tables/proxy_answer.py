"""The stand-in study's answer (proxy): SEVEN-pre (SEVEN-dyn in Table III's columns) against each baseline,
paired by seed, in every column they share; the significance and summary tables of those comparisons; and the
computed sentences on whether its ordering over its baselines holds (or what must still run before they can
be written). Pure: the cells and per-seed values of proxy.proxy_cells in, DataFrames and strings out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd

from seven_bench.tables.keys import changes_trainer, is_dense, is_trainer_change, method_label, variant_parts
from seven_bench.tables.layout import MISSING, format_cell
from seven_bench.tables.stats import PairedDifference, paired_difference, seeds_phrase

REFERENCE = "seven_pre"  # the method whose ordering over its baselines the study asks about
DYNAMIC_REFERENCE = "seven_dyn"  # the same question for Table III's dynamic methods
# How close a budget control's optimizer steps must come to the baseline's (a fraction of the baseline's).
BUDGET_MATCH = 0.05
# Points the last epoch must add, on average over seeds, for a cell to count as still rising when its recipe
# ended: 8 MRPC dev examples (0.245 points each) or 0.02 Pearson, above the last-epoch moves of the converged
# dense runs here (MRPC +0.7 to +2.0 points).
STILL_RISING_PCT = 2.0
# Baselines to suggest when a reference has none yet: those of its own table.
EXAMPLE_BASELINES = {REFERENCE: "random, magnitude, snip, grasp", DYNAMIC_REFERENCE: "platon, movement, soft_movement"}


@dataclass(frozen=True)
class BudgetControl:
    """The reference run with as many optimizer steps as a baseline that trained longer (`trainer.epochs=12`
    beside a ticket's 3 rounds + fine-tune): whether the baseline's lead is its mask or its extra training."""

    column: str
    steps: float
    mean: float
    std: float
    n: int
    # The control − the baseline in the baseline's column, paired by seed: the same test as the comparison's.
    difference: PairedDifference = PairedDifference((), math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class Comparison:
    """The reference (SEVEN-pre or SEVEN-dyn) against one baseline in one column: the means over seeds and the
    paired difference."""

    column: str
    method: str
    reference_mean: float
    other_mean: float
    difference: PairedDifference
    reference: str = REFERENCE
    # Optimizer steps behind each side's number (before the fine-tune + the fine-tune; proxy.budget_table).
    reference_steps: float = math.nan
    other_steps: float = math.nan
    control: BudgetControl | None = None  # the reference given the baseline's steps, where one ran

    @property
    def ahead(self) -> bool:
        return self.reference_mean > self.other_mean

    @property
    def trained_longer(self) -> bool:
        """Whether the baseline's number took more optimizer steps than the reference's (NaN: cannot say)."""
        return self.other_steps > self.reference_steps


def is_variant_of(method: str, reference: str) -> bool:
    """Whether a row is the reference run with a changed option (``seven_pre[resurrection=True]``, the paper's
    Fig. 6): an ablation of the reference, not one of its baselines."""
    return method != reference and method.partition("[")[0] == reference


def comparisons(
    cells: pd.DataFrame,
    values: Mapping[tuple[str, str], Mapping[int, float]],
    reference: str = REFERENCE,
    ablations: bool = False,
) -> list[Comparison]:
    """Every pruning method that shares a column with the reference (SEVEN-pre, or SEVEN-dyn in Table III's
    columns), paired with it by seed; with ``ablations``, the reference's own variants instead (they would
    otherwise count as baselines in the answer)."""
    found = []
    means = {(c, m): mean for c, m, mean in zip(cells["column"], cells["method"], cells["mean"])}
    steps = {
        (c, m): before + after
        for c, m, before, after in zip(
            cells["column"], cells["method"], cells["steps_before_finetune"], cells["finetune_steps"]
        )
    }
    for column, method in zip(cells["column"], cells["method"]):
        if method == reference or is_dense(method) or (column, reference) not in means:
            continue
        if is_variant_of(method, reference) != ablations:
            continue
        found.append(
            Comparison(
                column,
                method,
                means[(column, reference)],
                means[(column, method)],
                paired_difference(values[(column, reference)], values[(column, method)]),
                reference,
                steps[(column, reference)],
                steps[(column, method)],
                budget_control(cells, values, column, reference, method, steps[(column, method)])
                if steps[(column, method)] > steps[(column, reference)]
                else None,
            )
        )
    return found


def split_controls(cells: pd.DataFrame, found: Sequence[Comparison]) -> tuple[list[Comparison], list[Comparison]]:
    """The comparisons at the recipes the paper's cells ran, and those in budget-matched columns (a paper cell
    with typed trainer settings, such as `[epochs=10]`). The answer counts only the first: a control column
    repeats a counted column's task and sparsity, and counting both would count that column twice."""
    controls = set(cells.loc[cells["variant"].map(changes_trainer), "column"]) if len(cells) else set()
    return [c for c in found if c.column not in controls], [c for c in found if c.column in controls]


def budget_control(
    cells: pd.DataFrame,
    values: Mapping[tuple[str, str], Mapping[int, float]],
    column: str,
    reference: str,
    method: str,
    steps: float,
) -> BudgetControl | None:
    """The reference's cell that differs from its cell in ``column`` only by typed trainer settings (its variant
    adds ``epochs=12`` and the like) and trained within BUDGET_MATCH of ``steps`` optimizer steps in all (the
    baseline ``method``'s), with its paired difference from that baseline."""
    ours = cells[(cells["column"] == column) & (cells["method"] == reference)].iloc[0]
    parts = variant_parts(ours["variant"])
    for cell in cells[
        (cells["method"] == reference)
        & (cells["model"] == ours["model"])
        & (cells["task"] == ours["task"])
        & (cells["sparsity_pct"] == ours["sparsity_pct"])
        & (cells["column"] != column)
    ].to_dict("records"):
        theirs = variant_parts(cell["variant"])
        extra, total = theirs - parts, cell["steps_before_finetune"] + cell["finetune_steps"]
        typed_only = parts <= theirs and extra and all(map(is_trainer_change, extra))
        if typed_only and abs(total - steps) <= BUDGET_MATCH * steps:
            difference = paired_difference(values[(cell["column"], reference)], values[(column, method)])
            return BudgetControl(cell["column"], total, cell["mean"], cell["std"], cell["n"], difference)
    return None


def significance_table(found: Sequence[Comparison], reference: str = REFERENCE) -> pd.DataFrame:
    name = method_label(reference)
    rows = []
    for comparison in found:
        d = comparison.difference
        interval = MISSING if math.isnan(d.low) else f"[{d.low:+.2f}, {d.high:+.2f}]"
        rows.append(
            [
                comparison.column,
                method_label(comparison.method),
                d.n,
                f"{d.ahead} / {d.behind}",
                MISSING if math.isnan(d.mean) else f"{d.mean:+.2f}",
                interval,
                d.verdict,
            ]
        )
    columns = ["Column", "Method", "Paired seeds", f"{name} ahead / behind (seeds)"]
    table = pd.DataFrame(rows, columns=[*columns, f"{name} − method (mean)", "95% CI", f"{name} is"])
    return table.set_index("Column")


def summary_table(found: Sequence[Comparison], reference: str = REFERENCE) -> pd.DataFrame:
    """Per baseline, over the columns it shares with the reference: where the reference's mean is ahead, and the
    verdicts."""
    name = method_label(reference)
    rows = []
    for method in dict.fromkeys(c.method for c in found):
        mine = [c for c in found if c.method == method]
        verdicts = [c.difference.verdict for c in mine]
        rows.append(
            [
                method_label(method),
                len(mine),
                sum(c.ahead for c in mine),
                verdicts.count("better"),
                verdicts.count("worse"),
                len(mine) - verdicts.count("better") - verdicts.count("worse"),
            ]
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "Baseline",
            "Columns",
            f"{name} mean ahead",
            f"{name} better (CI)",
            f"{name} worse (CI)",
            "Cannot separate",
        ],
    )
    return table.set_index("Baseline")


def answer(found: Sequence[Comparison], reference: str = REFERENCE) -> list[str]:
    """Two sentences on whether the reference's (SEVEN-pre's, or SEVEN-dyn's) ordering over its baselines holds,
    computed from the comparisons; empty when no comparison has the two paired seeds an interval needs
    (missing_for_answer says why)."""
    if not found or max(c.difference.n for c in found) < 2:
        return []
    name = method_label(reference)
    total, ahead = len(found), sum(c.ahead for c in found)
    better = [c for c in found if c.difference.verdict == "better"]
    worse = [c for c in found if c.difference.verdict == "worse"]
    undecided = [c for c in found if c.difference.verdict not in ("better", "worse")]
    unsure = len(undecided)
    counts = sorted({c.difference.n for c in found})
    seeds = seeds_phrase(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]} seeds"
    first = (
        f"{name}'s mean is above the baseline's in {ahead} of {total} column–baseline comparisons "
        f"({len({c.method for c in found})} baseline(s) over {len({c.column for c in found})} column(s)), "
        f"and the paired 95% CI over {seeds} finds it better in {len(better)}, worse in {len(worse)} and "
        f"cannot separate {unsure}."
    )
    losers = ", ".join(dict.fromkeys(f"{method_label(c.method)} ({c.column})" for c in worse))
    winners = ", ".join(dict.fromkeys(f"{method_label(c.method)} ({c.column})" for c in better))
    # Where only some comparisons separate, say how few they are and which way the others lean: one separated
    # comparison out of twenty must not read as a verdict on all of them.
    rest = (
        f"; the other {unsure} cannot be separated with {seeds} (there {name}'s mean is ahead in "
        f"{sum(c.ahead for c in undecided)} of {unsure})"
        if unsure
        else ""
    )
    if better and not worse:
        second = (
            f"So on this stand-in {name}'s ordering over its baselines holds: every comparison is separated in "
            "its favour."
            if not unsure
            else f"So on this stand-in the seeds separate {name} from its baselines in {len(better)} of "
            f"{total} comparison(s), all in its favour ({winners}){rest}."
        )
    elif worse and not better:
        second = (
            f"So on this stand-in {name}'s ordering over its baselines does not hold: every separated "
            f"comparison has the baseline ahead: {losers}{rest}."
        )
    elif better and worse:
        second = (
            f"So on this stand-in the ordering is mixed: {name} is separated as better in {len(better)} "
            f"comparison(s) ({winners}) and as worse in {len(worse)}: {losers}{rest}."
        )
    else:
        lean = (
            f"lean towards {name}"
            if 2 * ahead > total
            else f"lean against {name}"
            if 2 * ahead < total
            else "lean neither way"
        )
        pairs = sum(c.difference.n for c in found)
        ahead_on, behind_on = sum(c.difference.ahead for c in found), sum(c.difference.behind for c in found)
        second = (
            f"So the seeds cannot tell whether {name}'s ordering over its baselines holds on this stand-in: "
            f"the means {lean}, but no difference is separated from 0 with {seeds} (seed by seed, {name} "
            f"is ahead in {ahead_on} and behind in {behind_on} of the {pairs} pairs)."
        )
    return [first, second]


def _control_difference(d: PairedDifference) -> str:
    """The paired test of a budget-matched control, in the significance table's words ("" without a shared seed)."""
    if not d.n:
        return ""
    interval = f", 95% CI [{d.low:+.2f}, {d.high:+.2f}]" if not math.isnan(d.low) else ""
    return f", paired by seed {d.mean:+.2f}{interval}: {d.verdict}"


def budget_sentence(found: Sequence[Comparison], reference: str = REFERENCE) -> str:
    """Which of the baselines whose mean is at or above the reference's had more training behind their number:
    a lead bought with more task training is another finding than a better mask. Empty when none leads."""
    leading = [c for c in found if not c.ahead]
    if not leading:
        return ""
    name = method_label(reference)
    longer = [c for c in leading if c.trained_longer]
    listed = "; ".join(
        f"{method_label(c.method)} at {c.column} ({c.other_steps:,.0f} vs {c.reference_steps:,.0f}"
        + (
            f"; {name} given {c.control.steps:,.0f} steps, {c.control.column}: "
            f"{format_cell(c.control.mean, c.control.std, c.control.n)} against its {c.other_mean:.2f}"
            f"{_control_difference(c.control.difference)}"
            if c.control
            else ""
        )
        + ")"
        for c in longer
    )
    unknown = sum(math.isnan(c.other_steps) or math.isnan(c.reference_steps) for c in leading)
    cannot_say = f" ({unknown} of them cannot say: a record without the count)" if unknown else ""
    return f"Of the {len(leading)} comparison(s) where the baseline's mean is at or above {name}'s{cannot_say}, " + (
        f"{len(longer)} are baselines that trained for more optimizer steps in all (before and during the "
        f"fine-tune; see the training-steps table): {listed}."
        if longer
        else f"none is a baseline that trained for more optimizer steps than {name}."
    )


def control_sentence(cells: pd.DataFrame, controls: Sequence[Comparison], reference: str = REFERENCE) -> str:
    """The reference against its baselines in the budget-matched columns, where both ran the longer recipe: not
    counted in the answer (split_controls), but the test of whether a lead on the paper's recipe survives one
    long enough for both to level out. Empty when no baseline ran a control's settings."""
    if not controls:
        return ""
    name = method_label(reference)
    cell = {(c["column"], c["method"]): c for c in cells.to_dict("records")}

    def side(column: str, method: str) -> str:
        found = cell[(column, method)]
        return f"{method_label(method)} {format_cell(found['mean'], found['std'], found['n'])}"

    listed = "; ".join(
        f"{c.column}: {side(c.column, reference)} against {side(c.column, c.method)}{_control_difference(c.difference)}"
        for c in controls
    )
    return (
        f"In the budget-matched columns, where {name} and a baseline both ran the longer recipe (not counted "
        f"above): {listed}."
    )


def caveats(
    cells: pd.DataFrame, counted: Sequence[Comparison], controls: Sequence[Comparison], reference: str = REFERENCE
) -> list[str]:
    """The answer's caveats, one paragraph each (split_controls' two lists in): the leads that came with more
    training, the columns where the reference was still rising when its recipe ended, and the budget-matched
    columns where a baseline ran the longer recipe too."""
    sentences = (
        budget_sentence(counted, reference),
        rising_sentence(cells, [*counted, *controls], reference),
        control_sentence(cells, controls, reference),
    )
    return [sentence for sentence in sentences if sentence]


def still_rising(last_epoch_gain: float) -> bool:
    """Whether a cell whose last epoch added ``last_epoch_gain`` points was still climbing when its recipe stopped:
    its number is where training was cut off, not where the method levels out, so a longer recipe could reorder it
    against a converged neighbour."""
    return bool(last_epoch_gain >= STILL_RISING_PCT)  # NaN (one epoch): False


def rising_sentence(cells: pd.DataFrame, found: Sequence[Comparison], reference: str = REFERENCE) -> str:
    """The columns of the answer where the reference was still rising when its recipe ended, with the last-epoch
    gains of the baselines at or above it there: a lead over a method that had not finished recovering says as
    much about the recipe's length as about the masks. Empty when there is none."""
    gain = {(c["column"], c["method"]): c["last_epoch_gain"] for c in cells.to_dict("records")}
    rising = [
        column
        for column in dict.fromkeys(c.column for c in found)
        if still_rising(gain.get((column, reference), math.nan))
    ]
    if not rising:
        return ""

    def where(column: str) -> str:
        leading = ", ".join(
            f"{method_label(c.method)} {gain[(column, c.method)]:+.2f}"
            for c in found
            if c.column == column and not c.ahead and not math.isnan(gain[(column, c.method)])
        )
        theirs = f"; the baselines at or above it there: {leading}" if leading else ""
        return f"{column} (its last epoch added {gain[(column, reference)]:+.2f} points{theirs})"

    return (
        f"{method_label(reference)} was still rising when its recipe ended in {'; '.join(map(where, rising))}: "
        "there its number is where training stopped, not where it levels out, and a longer recipe could reorder it."
    )


def missing_for_answer(cells: pd.DataFrame, found: Sequence[Comparison], reference: str = REFERENCE) -> list[str]:
    """What must still run before the study can answer (empty when answer() has one)."""
    name = method_label(reference)
    if cells.empty:
        return ["no successful run records"]
    pruned = cells[~cells["method"].map(is_dense).astype(bool)]
    reasons = []
    if reference not in set(pruned["method"]):
        reasons.append(f"no {name} records (pruner={reference}): it is the method whose ordering is asked about")
    if pruned[~pruned["method"].map(lambda m: m == reference or is_variant_of(m, reference))].empty:
        examples = EXAMPLE_BASELINES.get(reference, EXAMPLE_BASELINES[REFERENCE])
        reasons.append(f"no baseline records (e.g. pruner={examples})")
    if not reasons and not found:
        with_reference = ", ".join(pruned.loc[pruned["method"] == reference, "column"])
        reasons.append(f"no baseline ran in a column where {name} ran ({with_reference})")
    if found and max(c.difference.n for c in found) < 2:
        reasons.append(
            f"no {name}/baseline pair shares two seeds; a paired 95% CI needs at least two (e.g. seed=0,1,2 for both)"
        )
    return reasons
