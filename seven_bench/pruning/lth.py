"""LTH (iterative magnitude pruning as BERT-Tickets' `LT_glue.py` runs it) and LTH-Rewind, on one shared path.

A round of the path (ALGORITHMS.md 7.1): fine-tune with a fresh optimizer for one round's steps under the
current mask; prune by global |W| of the fine-tuned weights `1 / (1/rate - j)` of the *remaining* weights
(torch's `global_unstructured(L1Unstructured, amount=...)`, j = round - 1), which is `rate` of the
*original* count each round (10%, 20%, ..., and 100% at round 10 with rate 0.1); rewind every weight but
the task head to the pretrained weights (LTH) or to the weights after k dense steps of round 1
(LTH-Rewind); the head keeps its trained values into the next round.

One path serves every sparsity: it is an artifact keyed by the cell's model, data, seed and the path's
settings (never the sparsity), written round by round (`round-XX.pt` then `round-XX.json`), so a cell at
sparsity s runs only the rounds it needs that no earlier cell stored, and a cell killed mid-path resumes
from its last finished round. Each round draws its own seeded batch stream and dropout seed, so a round is
the same whether the rounds before it ran in this process or were loaded.

The ticket at sparsity s is the mask of round s / rate; `prepare` leaves that mask and puts back the weights
the cell started from (pretrained, with the fresh head the cell built), so run.py fine-tunes the ticket with
the cell's recipe, as `glue_trans.py --mask_dir` does. LTH-Rewind's ticket starts from the rewind point
(Frankle et al. 2020; Lottery-pools' `main_imp.py`), `pruner.ticket_init=pretrained` from the pretrained.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

import torch
from tqdm.auto import tqdm

from seven_bench.artifacts import producing
from seven_bench.errors import UserError
from seven_bench.pruning.base import Masks, PruneContext, Pruner
from seven_bench.pruning.configured import from_config
from seven_bench.pruning.selection import global_topk
from seven_bench.train import run_steps

# What BERT-Tickets does not rewind (`rewind()` keeps every key containing "bert"): the task head. CLIP's
# zero-shot head is a frozen buffer, so there every trained weight is rewound.
HEAD_PREFIXES = ("classifier.",)
# Trainer settings that do not change what a round computes (or that the round's step count already holds).
_NOT_PATH_SETTINGS = (
    "device",
    "num_workers",
    "checkpoint_every",
    "keep_checkpoints",
    "recipe",
    "eval_batch_size",
    "epochs",
    "max_steps",
)
CLIP_NOTE = (
    "no CLIP LTH code exists in the originals (BERT-Tickets is BERT-only, the ISP repository has none): "
    "the rounds use the cell's CLIP recipe"
)
State = dict[str, torch.Tensor]


def is_head(name: str) -> bool:
    return name.startswith(HEAD_PREFIXES)


def prune_amount(round_index: int, rate: float) -> float:
    """The amount torch's global L1 cut takes of the remaining weights in round j (0-based): 1/(1/rate - j)."""
    return 1.0 / (1.0 / rate - round_index)


def prune_count(remaining: int, round_index: int, rate: float) -> int:
    """Weights pruned in round j: round(amount * remaining), as torch's `_compute_nparams_toprune`."""
    return min(remaining, int(round(prune_amount(round_index, rate) * remaining)))


def imp_cut(weights: State, mask: Masks | None, round_index: int, rate: float) -> Masks:
    """One IMP round's mask: the largest |W| among the weights `mask` still keeps, minus `prune_count`."""
    total = sum(w.numel() for w in weights.values())
    remaining = total if mask is None else sum(int(torch.count_nonzero(m)) for m in mask.values())
    keep = remaining - prune_count(remaining, round_index, rate)
    scores = {n: w.detach().abs() for n, w in weights.items()}
    return global_topk(scores, keep / total, eligible=mask, count_rule="exact")


def level_of(sparsity: float, rate: float) -> int:
    """The round whose mask has this sparsity; a sparsity off the path's grid stops with one line."""
    level = int(round(sparsity / rate))
    if abs(level * rate - sparsity) > 1e-9 or level * rate >= 1.0:
        raise UserError(
            f"sparsity={sparsity} is not on the IMP path: each round prunes {rate:g} of the original count, "
            f"so the sparsity must be a multiple of {rate:g} below 1 (or pass pruner.rate=...)"
        )
    return level


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: t.detach().to("cpu", copy=True) for n, t in tensors.items()}


@contextlib.contextmanager
def kept_rng() -> Iterator[None]:
    """The global RNG as it was: the cell's fine-tune must not depend on how many rounds ran here."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        yield


class ImpPath:
    """The rounds of one IMP path, loaded from its artifact or run and stored as they finish."""

    def __init__(
        self,
        ctx: PruneContext,
        initial: State,
        rate: float,
        round_steps: int,
        rewind_steps: int,
        lr_span: str,
        tag: str = "imp_path",
    ):
        self.ctx, self.initial = ctx, initial
        self.rate, self.round_steps, self.rewind_steps, self.lr_span = rate, round_steps, rewind_steps, lr_span
        self.schedule_rounds = int(round(1.0 / rate))  # LT_glue.py's t_total covers every round
        settings = {k: v for k, v in ctx.settings.items() if k not in _NOT_PATH_SETTINGS}
        self.key = {
            "identity": ctx.identity,
            "training": settings,
            "rate": rate,
            "round_steps": round_steps,
            "rewind_steps": rewind_steps,
            "lr_span": lr_span,
            "prunable": sorted(ctx.prunable),
        }
        self.artifact = ctx.artifacts.get(tag, self.key) if ctx.artifacts is not None else None
        self._memory: dict[str, Any] = {}  # the parts, when there is no artifact store (unit tests)
        self.rounds: list[dict[str, Any]] = []  # facts of every round this cell used, "ran" or "stored"

    # --- parts ----------------------------------------------------------------------------------------
    def _has(self, name: str) -> bool:
        return self.artifact.has(name) if self.artifact is not None else name in self._memory

    def _save(self, name: str, obj: Any) -> None:
        if self.artifact is not None:
            self.artifact.save(name, obj)
        else:
            self._memory[name] = obj

    def _load(self, name: str) -> Any:
        return self.artifact.load(name) if self.artifact is not None else self._memory[name]

    def stored(self, r: int) -> bool:
        return self._has(f"round-{r:02d}.json")  # written after the round's tensors: the round is whole

    def mask(self, level: int) -> Masks | None:
        """The mask after `level` rounds (None: level 0, dense), on the cell's device."""
        if level == 0:
            return None
        return {n: m.to(self.ctx.device) for n, m in self._load(f"round-{level:02d}.pt")["mask"].items()}

    def weights(self, r: int) -> State:
        """The trained weights of round r (trained under the mask of level r - 1), on the CPU."""
        return self._load(f"round-{r:02d}.pt")["weights"]

    def rewind_point(self) -> State:
        """What the rounds rewind to: the pretrained weights, or those after k dense steps of round 1."""
        if self.rewind_steps == 0:
            return self.initial
        return {n: t.to(self.ctx.device) for n, t in self._load("round-01.pt")["rewind"].items()}

    # --- rounds ---------------------------------------------------------------------------------------
    def ensure(self, rounds: int) -> None:
        """Rounds 1..`rounds` stored (running the missing ones in order), their facts in `self.rounds`.
        Under the path's lock: cells of a parallel sweep at other sparsities wait for the rounds they share."""
        with producing(self.artifact):
            self._ensure(rounds)

    def _ensure(self, rounds: int) -> None:
        first_missing = next((r for r in range(1, rounds + 1) if not self.stored(r)), rounds + 1)
        bar = tqdm(
            total=rounds,
            initial=first_missing - 1,
            desc="IMP path (rounds)",
            disable=not self.ctx.progress or first_missing > rounds,
            dynamic_ncols=True,
        )
        for r in range(1, rounds + 1):
            if r < first_missing:
                self.rounds.append({**self._load(f"round-{r:02d}.json"), "source": "stored"})
                continue
            bar.set_postfix(round=f"{r}/{rounds}")
            self.rounds.append({**self._run_round(r, rounds), "source": "ran"})
            bar.update(1)
        bar.close()

    def _start_state(self, r: int) -> State:
        """Round 1 starts from the cell's initial weights; later rounds from the rewind point, with the
        head trained through the rounds before (BERT-Tickets does not rewind the classifier)."""
        if r == 1:
            return self.initial
        state = dict(self.rewind_point())
        for name, value in self.weights(r - 1).items():
            if is_head(name):
                state[name] = value.to(self.ctx.device)
        return state

    def _run_round(self, r: int, of: int) -> dict[str, Any]:
        ctx, model = self.ctx, self.ctx.model
        previous = self.mask(r - 1)
        model.load_state_dict(self._start_state(r), strict=False)
        if previous is not None:
            with torch.no_grad():
                for name, param in ctx.prunable.items():
                    param.mul_(previous[name])
        seed = ctx.seed * 1000 + r  # this round's batches and dropout, whatever ran before it
        torch.manual_seed(seed)
        rewind: State = {}

        def capture(step: int, loss: torch.Tensor) -> None:
            if r == 1 and step + 1 == self.rewind_steps:
                rewind.update(_cpu({n: t for n, t in model.state_dict().items() if not is_head(n)}))

        started = time.perf_counter()
        run_steps(
            ctx,
            self.round_steps,
            ctx.settings,
            masks=previous,
            on_step=capture,
            desc=f"IMP round {r}/{of}",
            batches=ctx.stream(seed) if ctx.stream is not None else None,
            schedule_steps=self.round_steps * self.schedule_rounds if self.lr_span == "all_rounds" else None,
        )
        seconds = time.perf_counter() - started
        trained = _cpu({n: p for n, p in model.named_parameters() if p.requires_grad})
        mask = imp_cut({n: p for n, p in ctx.prunable.items()}, previous, r - 1, self.rate)
        kept = sum(int(torch.count_nonzero(m)) for m in mask.values())
        total = sum(m.numel() for m in mask.values())
        facts = {
            "round": r,
            "sparsity": 1.0 - kept / total,
            "kept": kept,
            "pruned_this_round": (total if previous is None else sum(int(m.sum()) for m in previous.values())) - kept,
            "steps": self.round_steps,
            "seconds": round(seconds, 3),
        }
        part = {"mask": _cpu(mask), "weights": trained}
        if r == 1 and self.rewind_steps:
            part["rewind"] = rewind
        self._save(f"round-{r:02d}.pt", part)
        self._save(f"round-{r:02d}.json", facts)
        if r == self.schedule_rounds and self.artifact is not None:
            self.artifact.finish({"rounds": r})  # the whole path as the original runs it
        return facts

    def describe(self) -> dict[str, Any]:
        ran = [f["round"] for f in self.rounds if f["source"] == "ran"]
        return {
            **(self.artifact.describe() if self.artifact is not None else {"kind": "imp_path", "path": None}),
            "rounds_ran_here": ran,
            "rounds_stored_before": [f["round"] for f in self.rounds if f["source"] == "stored"],
            "steps_ran_here": self.round_steps * len(ran),
        }


class LotteryTicket(Pruner):
    """`lth` / `lth_rewind`: the mask of the IMP path's round sparsity / rate, fine-tuned by the cell."""

    timing = "pre"

    def __init__(
        self,
        name: str,
        density: float,
        rate: float = 0.1,
        round_steps: int = 0,
        rewind_fraction: float = 0.0,
        rewind_steps: int = 0,
        lr_span: str = "all_rounds",
        ticket_init: str = "pretrained",
        full_path: bool = False,
    ):
        super().__init__(density)
        if not 0.0 < rate < 1.0:
            raise UserError(f"pruner.rate={rate}: the share of the original count pruned per round, in (0, 1)")
        if lr_span not in ("all_rounds", "round"):
            raise UserError(f"pruner.lr_span={lr_span!r}: choose all_rounds (BERT-Tickets) or round")
        if ticket_init not in ("pretrained", "rewind"):
            raise UserError(f"pruner.ticket_init={ticket_init!r}: choose pretrained or rewind")
        if int(round_steps) < 0:
            raise UserError(f"pruner.round_steps={round_steps}: a number of steps, or 0 (the cell's fine-tune)")
        if not 0.0 <= rewind_fraction < 1.0 or int(rewind_steps) < 0:
            raise UserError("pruner.rewind_fraction must be in [0, 1) and pruner.rewind_steps >= 0")
        self.name = name
        self.rate, self.round_steps_option, self.lr_span = float(rate), int(round_steps), lr_span
        self.rewind_fraction, self.rewind_steps_option = float(rewind_fraction), int(rewind_steps)
        self.ticket_init, self.full_path = ticket_init, bool(full_path)
        self.level = level_of(1.0 - density, self.rate)
        self.path: ImpPath | None = None
        self.notes: list[str] = []

    def rewind_steps(self, round_steps: int) -> int:
        """k: the steps of round 1 whose weights the rounds rewind to (0: the pretrained weights):
        `rewind_steps` when set, else `rewind_fraction` of the round's steps (at least 1)."""
        if self.rewind_steps_option:
            return min(self.rewind_steps_option, round_steps)
        return min(round_steps, max(1, int(round(self.rewind_fraction * round_steps)))) if self.rewind_fraction else 0

    def open_path(self, ctx: PruneContext, initial: State) -> ImpPath:
        round_steps = int(self.round_steps_option or ctx.total_steps)
        path = ImpPath(ctx, initial, self.rate, round_steps, self.rewind_steps(round_steps), self.lr_span)
        if not any(is_head(n) for n, p in ctx.model.named_parameters() if p.requires_grad):
            self.notes.append(CLIP_NOTE if "clip" in str(ctx.identity.get("model", "")) else "no task head found")
        return path

    def prepare(self, ctx: PruneContext) -> None:
        initial = {n: t.detach().clone() for n, t in ctx.model.state_dict().items()}
        self.path = self.open_path(ctx, initial)
        with kept_rng():
            self.path.ensure(self.path.schedule_rounds if self.full_path else self.level)
            self.masks = self.path.mask(self.level)
            start = dict(initial)
            if self.ticket_init == "rewind":
                start.update({n: t for n, t in self.path.rewind_point().items() if not is_head(n)})
            ctx.model.load_state_dict(start)

    def steps_before_finetune(self) -> int:
        """The IMP rounds up to the ticket's: its mask is cut from the weights of round `level`."""
        assert self.path is not None, "steps_before_finetune() before prepare()"
        return self.level * self.path.round_steps

    def summary(self) -> dict[str, Any]:
        path = self.path
        assert path is not None, "summary() before prepare()"
        return {
            "method": "IMP as BERT-Tickets LT_glue.py (global |W|, rate of the original count per round)",
            "rate": self.rate,
            "round_used": self.level,
            "round_sparsity": path.rounds[self.level - 1]["sparsity"] if self.level else 0.0,
            "round_steps": path.round_steps,
            "rewind": {"to": "pretrained" if not path.rewind_steps else "step", "steps": path.rewind_steps},
            "ticket_init": self.ticket_init,
            "lr_span": self.lr_span,
            "head_rewound": False,
            # LT_glue.py always runs 1/rate rounds, the last one emptying the mask; a cell runs what it needs
            "full_path": self.full_path,
            "original_rounds": path.schedule_rounds,
            "rounds": path.rounds,
            "artifact": path.describe(),
            "notes": self.notes,
        }


def build_lth(cfg: Any, density: float, seed: int) -> LotteryTicket:
    return from_config(LotteryTicket, cfg, "lth", density)


def build_lth_rewind(cfg: Any, density: float, seed: int) -> LotteryTicket:
    return from_config(LotteryTicket, cfg, "lth_rewind", density)
