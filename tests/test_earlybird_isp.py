"""EarlyBird and ISP: the EB distance and stop rule on hand mask sequences, the ticket's starting weights,
ISP's weak-mask merge and its per-round counts, and both through the CLI on tiny_bert and tiny_clip."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
import torch
from torch.nn.utils import prune as torch_prune

from seven_bench.conf import compose_config
from seven_bench.errors import UserError
from seven_bench.pruning.base import PruneContext
from seven_bench.pruning.earlybird import EarlyBird, MaskQueue, hamming
from seven_bench.pruning.isp import InstantSoup, keep_largest, merge, weak_keep
from seven_bench.pruning.registry import PRUNERS
from seven_bench.run import run_cell
from seven_bench.spec import build_spec
from seven_bench.train import run_steps
from tests.conftest import ToyModel, requires_shared_data

SGD = {"optimizer": "sgd", "lr": 0.05, "lr_schedule": "constant", "max_grad_norm": None}


def _bits(text: str) -> torch.Tensor:
    return torch.tensor([c == "1" for c in text])


def _toy_ctx(rows: int = 2, cols: int = 10, seed: int = 0, settings: dict | None = None) -> PruneContext:
    torch.manual_seed(seed)
    model = ToyModel(torch.randn(rows, cols))
    x = torch.randn(64, cols)
    y = (x @ torch.randn(cols, rows)).argmax(1)  # a linear teacher's classes (rows classes)
    batches = ({"x": x[i : i + 8], "labels": y[i : i + 8]} for i in itertools.cycle(range(0, 64, 8)))
    ctx = PruneContext(model, {"lin.weight": model.lin.weight}, batches, num_labels=rows, total_steps=10, seed=seed)
    ctx.settings, ctx.steps_per_epoch = dict(settings or SGD), 10
    return ctx


# ----------------------------------------------------------------------------------------------- EarlyBird
def test_hamming_is_the_fraction_of_differing_entries():
    assert hamming(_bits("1111100000"), _bits("0111110000")) == 0.2  # entries 0 and 5 differ
    assert hamming(_bits("1100"), _bits("1100")) == 0.0
    assert hamming(_bits("1100"), _bits("0011")) == 1.0  # density 1/2: the largest possible, 2 min(d, 1-d)


def test_queue_draws_only_when_the_newest_is_within_eps_of_all_four_older():
    queue = MaskQueue(keep=5, eps=0.1)
    a = _bits("11111000001111100000")
    b = _bits("01111100001111100000")  # 2 of 20 differ from a: 0.1, within eps (<=)
    c = _bits("01111100000111110000")  # 2 more: 0.1 from b, 0.2 from a
    assert queue.push(a) is None and queue.push(a) is None and queue.push(b) is None and queue.push(b) is None
    d = queue.push(c)  # [a, a, b, b, c]
    assert d == [0.2, 0.2, 0.1, 0.1] and not queue.emerged(d)
    d = queue.push(c)  # [a, b, b, c, c]
    assert d == [0.2, 0.1, 0.1, 0.0] and not queue.emerged(d)
    d = queue.push(c)  # [b, b, c, c, c]: a has left the FIFO
    assert d == [0.1, 0.1, 0.0, 0.0] and queue.emerged(d)


def _scripted(monkeypatch: pytest.MonkeyPatch, eb: EarlyBird, sequence: list[str]) -> list[int]:
    """Make the pruner's k-th mask the k-th hand mask (rows of the 2x10 toy weight)."""
    calls: list[int] = []

    def mask_of(ctx: PruneContext) -> dict[str, torch.Tensor]:
        calls.append(len(calls))
        return {"lin.weight": _bits(sequence[min(len(calls) - 1, len(sequence) - 1)]).view(2, 10)}

    monkeypatch.setattr(eb, "mask_of", mask_of)
    return calls


def test_earlybird_draws_at_the_known_step_and_rewinds_to_the_start(monkeypatch):
    a, b = "11111000001111100000", "01111100001111100000"
    ctx = _toy_ctx()
    start = ctx.model.lin.weight.detach().clone()
    eb = EarlyBird(0.5, interval_steps=2, max_search_steps=100, weights="pretrained")
    # checks at steps 0, 2, 4, ...: the FIFO fills at step 8 ([a, a, a, b, b]: 0.1 <= eps), so drawn at 8
    _scripted(monkeypatch, eb, [a, a, a, b, b, b])
    eb.prepare(ctx)
    out = eb.summary()
    assert out["drawn"] and out["drawn_at_step"] == 8 and out["search_steps"] == 8
    assert [c["step"] for c in out["checks"]] == [0, 2, 4, 6, 8]
    assert out["checks"][-1]["distances"] == [0.1, 0.1, 0.1, 0.0] and "warnings" not in out
    assert torch.equal(eb.masks["lin.weight"], _bits(b).view(2, 10))
    assert torch.equal(ctx.model.lin.weight.detach(), start)  # rewound to the weights before the search

    a2, c = a, "01111100000111110000"  # c is 0.2 from a: the FIFO must lose every a before the draw
    eb = EarlyBird(0.5, interval_steps=2, max_search_steps=100)
    _scripted(monkeypatch, eb, [a2, a2, a2, a2, c, c, c, c, c])
    eb.prepare(_toy_ctx())
    assert eb.summary()["drawn_at_step"] == 16  # [c, c, c, c, c] at the 9th check


def test_earlybird_without_a_ticket_uses_the_last_mask_and_says_so(monkeypatch):
    a, b = "11111000001111100000", "00111110000011111000"  # 0.4 apart: never within eps
    eb = EarlyBird(0.5, interval_steps=2, max_search_steps=9)
    _scripted(monkeypatch, eb, [a, b, a, b, a, b])
    eb.prepare(_toy_ctx())
    out = eb.summary()
    assert not out["drawn"] and out["drawn_at_step"] is None and out["search_steps"] == 9
    assert [c["step"] for c in out["checks"]] == [0, 2, 4, 6, 8, 9]  # plus one at the budget's end
    assert torch.equal(eb.masks["lin.weight"], _bits(b).view(2, 10))  # the 6th, last mask
    assert "no ticket within the search budget of 9 steps" in out["warnings"][0]


def test_earlybird_trained_weights_are_the_search_weights_at_the_draw(monkeypatch):
    a = "11111000001111100000"
    eb = EarlyBird(0.5, interval_steps=3, max_search_steps=100, weights="trained")
    _scripted(monkeypatch, eb, [a] * 5)
    ctx = _toy_ctx()
    eb.prepare(ctx)
    assert eb.summary()["drawn_at_step"] == 12
    reference = _toy_ctx()  # the same weights and batches, 12 plain steps of the same recipe
    run_steps(reference, 12, SGD)
    torch.testing.assert_close(ctx.model.lin.weight.detach(), reference.model.lin.weight.detach())


def test_earlybird_mask_is_global_magnitude_at_the_density():
    ctx = _toy_ctx(rows=1, cols=4)
    with torch.no_grad():
        ctx.model.lin.weight.copy_(torch.tensor([[3.0, -1.0, -2.0, 0.5]]))
    mask = EarlyBird(0.5).mask_of(ctx)["lin.weight"]
    assert mask.tolist() == [[True, False, True, False]]


@pytest.mark.parametrize(
    "kwargs, needle",
    [({"weights": "rewound"}, "pruner.weights"), ({"keep": 1}, "keep >= 2"), ({"epsilon": 2}, "[0, 1]")],
)
def test_earlybird_bad_values_stop_with_one_line(kwargs, needle):
    with pytest.raises(UserError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        EarlyBird(0.5, **kwargs)


# ------------------------------------------------------------------------------------------------------ ISP
def test_merge_union_and_intersection_on_hand_masks():
    masks = [{"w": _bits("110100")}, {"w": _bits("100110")}, {"w": _bits("100101")}]
    assert merge(masks, "union")["w"].tolist() == [c == "1" for c in "110111"]
    assert merge(masks, "intersection")["w"].tolist() == [c == "1" for c in "100100"]


def test_weak_keep_counts_as_torch_l1_unstructured():
    assert [weak_keep(n, 0.1) for n in (40, 36, 32, 25, 15, 5)] == [36, 32, 29, 23, 13, 5]  # round half to even
    for n in (25, 15, 36):
        module = torch.nn.Linear(n, 1, bias=False)
        torch_prune.l1_unstructured(module, "weight", amount=0.1)
        assert int(module.weight_mask.sum()) == weak_keep(n, 0.1)


def test_keep_largest_cuts_only_the_remaining_weights():
    weights = {"a": torch.tensor([5.0, -4.0, 3.0]), "b": torch.tensor([-2.0, 1.0, 0.5])}
    eligible = {"a": _bits("011"), "b": _bits("111")}  # 5.0 is already pruned: never chosen again
    out = keep_largest(weights, eligible, 3)
    assert out["a"].tolist() == [False, True, True] and out["b"].tolist() == [True, False, False]


def test_isp_rounds_prune_ten_percent_of_the_remaining_then_the_gap_one_shot():
    # weak_lr=warmup with one weak step: the fresh warm-up's first rate is 0, so the 5 copies keep the main
    # weights and their masks agree: each round keeps exactly remaining - round(0.1 remaining) of 40
    ctx = _toy_ctx(rows=4, cols=10)
    isp = InstantSoup(0.5, main_steps=3, weak_steps=1, weak_lr="warmup")
    isp.prepare(ctx)
    out = isp.summary()
    merged = [round(40 * (1 - r["merged_sparsity"])) for r in out["rounds"] if "merged_sparsity" in r]
    assert merged == [36, 32, 29, 26, 23, 21]  # 47.5% is within 5 points of 50%: stop
    assert out["stopped_by"] == "gap" and out["pruning_rounds"] == 6
    assert out["one_shot"] == pytest.approx({"from_sparsity": 0.475, "to_sparsity": 0.5})
    assert int(isp.masks["lin.weight"].sum()) == 20
    assert all(len(set(r["weak_sparsity"])) == 1 for r in out["rounds"] if "weak_sparsity" in r)
    assert out["search_steps"] == 7 * 3 + 6 * 5 * 1  # 7 main phases, 6 rounds of 5 weak copies
    assert isp.steps_before_finetune() == 51
    assert torch.all(ctx.model.lin.weight.detach()[~isp.masks["lin.weight"]] == 0)


def test_isp_union_keeps_at_least_and_intersection_at_most_each_weak_mask():
    counts = {}
    for how in ("union", "intersection"):
        isp = InstantSoup(0.8, main_steps=2, weak_steps=3, weak_lr="main", merge=how, max_rounds=1)
        isp.prepare(_toy_ctx(rows=10, cols=10, settings={**SGD, "lr": 0.5}))
        first = isp.summary()["rounds"][0]
        counts[how] = round(100 * (1 - first["merged_sparsity"]))
        assert all(round(100 * (1 - s)) == 90 for s in first["weak_sparsity"])
        assert "max_rounds=1" in isp.summary()["warnings"][0]
    assert counts["union"] > 90 > counts["intersection"]  # the copies trained on different batches disagree


# ----------------------------------------------------------------------------------------------- CLI cells
SMALL = ["task.max_train_examples=64", "task.max_eval_examples=32", "trainer.max_steps=2", "progress=false"]
EB_FAST = ["pruner.interval_steps=1", "pruner.max_search_steps=6"]


@requires_shared_data()
def test_both_through_the_cli_on_tiny_bert(tmp_path):
    # one -m sweep (one process) over both pruners; pruner.<key> reaches only the pruner whose yaml has it
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "seven_bench.cli",
            "-m",
            "model=tiny_bert",
            "task=rte",
            "pruner=earlybird,isp",
            "sparsity=0.5",
            *SMALL,
            *EB_FAST,
            "pruner.main_steps=2",
            "pruner.weak_steps=1",
            f"results_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    records = {
        r["spec"]["pruner"]["name"]: r for r in (json.loads(p.read_text()) for p in tmp_path.glob("runs/*/record.json"))
    }
    assert set(records) == {"earlybird", "isp"}
    for record in records.values():
        assert record["status"] == "ok" and record["sparsity"]["pruned_but_nonzero"] == 0
        assert abs(record["sparsity"]["achieved"] - 0.5) <= 1 / record["sparsity"]["prunable_weights"]
    assert records["earlybird"]["pruner"]["max_search_steps"] == 6
    assert records["isp"]["pruner"]["stopped_by"] == "gap"
    for record in records.values():  # what the tables' training-steps view reads
        assert record["timing"]["steps_before_finetune"] == record["pruner"]["search_steps"] > 0


@requires_shared_data()
@pytest.mark.parametrize("pruner, options", [("earlybird", EB_FAST), ("isp", ["pruner.main_steps=2"])])
def test_tiny_clip_cells(tmp_path, pruner, options):
    overrides = ["model=tiny_clip", "task=mnist", f"pruner={pruner}", "sparsity=0.7", "trainer.batch_size=16"]
    spec = build_spec(compose_config([*overrides, *SMALL, *options]))
    record = run_cell(spec, tmp_path, progress=False)
    assert record["status"] == "ok", record["error"]
    assert abs(record["sparsity"]["achieved"] - 0.7) <= 1 / record["sparsity"]["prunable_weights"]
    assert record["sparsity"]["pruned_but_nonzero"] == 0


def test_both_are_registered_pre_pruners():
    assert PRUNERS.get("earlybird").timing == "pre" and PRUNERS.get("isp").timing == "pre"


def test_table_rows_map_to_the_published_keys():
    from seven_bench.tables.keys import method_key, table_keys

    def record(pruner: dict, tags: list[str], optimizer: str = "adamw") -> dict:
        spec = {"model": {"name": "bert"}, "task": {"name": "rte"}, "pruner": {"timing": "pre", **pruner}}
        return {"spec": {**spec, "trainer": {"optimizer": optimizer}}, "experiments": tags}

    eb = record({"name": "earlybird", "weights": "pretrained"}, ["table2", "table5"])
    assert method_key(eb) == "earlybird" and table_keys(eb) == ["table2", "table5"]  # Table V repeats Table II
    assert method_key(record({"name": "earlybird", "weights": "trained"}, [])) == "earlybird[weights=trained]"
    isp = record({"name": "isp", "merge": "union", "weak_lr": "warmup"}, [])
    assert method_key(isp) == "isp" and table_keys(isp) == ["table2"]
    assert method_key(record({"name": "isp", "merge": "intersection", "weak_lr": "main"}, [])) == (
        "isp[merge=intersection,weak_lr=main]"
    )
