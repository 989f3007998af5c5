"""The shared machinery of pruners that train inside `prepare`: the artifact store and `run_steps`."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import threading
import time

import torch

from seven_bench.artifacts import ArtifactStore, key_hash, producing
from seven_bench.pruning.base import PruneContext
from seven_bench.train import run_steps
from tests.conftest import ToyModel


def test_artifact_parts_and_completion(tmp_path):
    store = ArtifactStore(tmp_path)
    art = store.get("lth_path", {"model": "tiny", "seed": 0})
    assert not art.complete and not art.has("round-1.pt")
    art.save("round-1.pt", {"mask": torch.ones(2, dtype=torch.bool)})
    assert art.has("round-1.pt") and not art.complete  # a killed producer leaves its finished parts
    art.finish({"rounds": 1})
    again = store.get("lth_path", {"seed": 0, "model": "tiny"})  # key order does not matter
    assert again.dir == art.dir and again.complete
    assert again.load("done.json")["rounds"] == 1
    assert torch.equal(again.load("round-1.pt")["mask"], torch.ones(2, dtype=torch.bool))
    assert key_hash({"a": 1}) != key_hash({"a": 2})
    assert not list(art.dir.glob(".*.tmp"))  # no temporary file left behind


def test_one_producer_at_a_time(tmp_path, caplog):
    """Two cells that need the same artifact: the second waits for the first's lock, then finds it whole."""
    store, key, events = ArtifactStore(tmp_path), {"model": "tiny", "seed": 0}, []
    held = threading.Event()

    def first() -> None:
        art = store.get("imp_path", key)
        with producing(art):
            held.set()
            time.sleep(0.5)
            art.save("round-01.json", {"round": 1})
            art.finish({"rounds": 1})
            events.append("first made it")

    thread = threading.Thread(target=first)
    thread.start()
    held.wait()
    second = store.get("imp_path", key)
    with caplog.at_level(logging.WARNING), producing(second):
        events.append(f"second in, complete={second.complete}")
    thread.join()
    assert events == ["first made it", "second in, complete=True"]
    assert "another cell is making imp_path" in caplog.text


def test_a_killed_producer_leaves_no_lock(tmp_path):
    art = ArtifactStore(tmp_path).get("imp_path", {"seed": 1})
    script = (
        "import time\nfrom pathlib import Path\nfrom seven_bench.artifacts import Artifact\n"
        f"art = Artifact(Path({str(tmp_path / 'artifacts')!r}), 'imp_path', {{'seed': 1}})\n"
        "with art.exclusive():\n    print('held', flush=True)\n    time.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    started = time.perf_counter()
    with producing(art):
        assert time.perf_counter() - started < 5


def test_run_steps_trains_and_keeps_the_mask():
    torch.manual_seed(0)
    model = ToyModel(torch.ones(1, 4))
    x = torch.randn(8, 4)
    batches = itertools.repeat({"x": x, "labels": x.sum(1)})
    mask = {"lin.weight": torch.tensor([[True, False, True, False]])}
    ctx = PruneContext(model, {"lin.weight": model.lin.weight}, batches, num_labels=1, total_steps=5, seed=0)
    seen: list[int] = []
    settings = {"optimizer": "sgd", "lr": 0.01, "lr_schedule": "constant"}
    assert run_steps(ctx, 5, settings, masks=mask, on_step=lambda s, loss: seen.append(s)) == 5
    w = model.lin.weight.detach()
    assert seen == [0, 1, 2, 3, 4]
    assert torch.all(w[~mask["lin.weight"]] == 0)  # pruned weights stay zero after every step
    assert not torch.allclose(w[mask["lin.weight"]], torch.ones(2))  # kept ones trained
