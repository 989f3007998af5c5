"""Export: structurally pruned BERTs come out smaller and compute the same logits; sparse storage round-trips."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from seven_bench.export import export_model, main, register_pruned_bert
from seven_bench.export_compress import (
    compress,
    from_bitmask,
    from_csr,
    from_nm,
    load_compressed,
    save_compressed,
    to_bitmask,
    to_csr,
    to_nm,
)
from seven_bench.export_model import PrunedBertForSequenceClassification
from seven_bench.export_slice import slice_bert
from tests.conftest import requires_shared_data

HIDDEN, HEADS, HEAD, FFN = 16, 4, 4, 12


def _bert() -> BertForSequenceClassification:
    """A 2-layer BERT (4 heads of 4, 12 neurons) with weights large enough that every part moves the logits."""
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=100,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=FFN,
        num_labels=3,
    )
    model = BertForSequenceClassification(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def _masked_bert() -> BertForSequenceClassification:
    """`_bert` pruned in the structured pruners' zero patterns (see the comments)."""
    model = _bert()
    with torch.no_grad():
        first, second = model.bert.encoder.layer
        att0, att1 = first.attention.self, second.attention.self
        for lin in (att0.query, att0.key, att0.value):  # head 1 of layer 0: q/k/v rows + output columns
            lin.weight[4:8] = 0
        first.attention.output.dense.weight[:, 4:8] = 0
        for h in range(HEADS):
            att1.value.weight[h * HEAD + 2] = 0  # v dim 2 of layer 1: value rows + output columns
            second.attention.output.dense.weight[:, h * HEAD + 2] = 0
            att1.query.weight[h * HEAD : h * HEAD + 2] = 0  # q-k dims 0, 1 of layer 1: query and key rows
            att1.key.weight[h * HEAD : h * HEAD + 2] = 0
        first.intermediate.dense.weight[[3, 5]] = 0  # neurons 3, 5 of layer 0: row + column
        first.output.dense.weight[:, [3, 5]] = 0
        second.intermediate.dense.weight[7] = 0  # neuron 7 of layer 1: row only (act(b) folds into the bias)
    return model


def _batch() -> dict[str, torch.Tensor]:
    ids = torch.randint(0, 100, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding: attention weights still sum to 1 over the kept keys
    return {"input_ids": ids, "attention_mask": mask}


def _logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def test_sliced_model_is_smaller_and_equal():
    model = _masked_bert()
    sliced, plan = slice_bert(model)
    assert plan["layer_sizes"] == [
        {"heads": 3, "qk_dim": 4, "v_dim": 4, "intermediate_size": 10},
        {"heads": 4, "qk_dim": 2, "v_dim": 3, "intermediate_size": 11},  # unequal widths: padded
    ]
    assert plan["kept_heads"] == [[0, 2, 3], [0, 1, 2, 3]]
    # removed: head 3*(4*16+4) + 16*4 = 268; v dim 4*(16+1) + 4*16 = 132; q-k dims 2*2*4*(16+1) = 272;
    # neurons 3 * (16+1 + 16) = 99
    before = sum(p.numel() for p in model.parameters())
    assert before - sum(p.numel() for p in sliced.parameters()) == 268 + 132 + 272 + 99
    expected = _logits(model, _batch())
    assert torch.allclose(_logits(sliced, _batch()), expected, atol=1e-5)
    # the test can fail: a wrong fold of the dropped neuron's constant moves the logits
    with torch.no_grad():
        sliced.bert.encoder.layer[1].output.dense.bias[0] += 1e-2
    assert not torch.allclose(_logits(sliced, _batch()), expected, atol=1e-5)


def test_export_folder_reloads_with_from_pretrained(tmp_path):
    model = _masked_bert()
    summary = export_model(model, tmp_path / "out", latency={"batch_size": 2, "seq_len": 8, "repeats": 1})
    expected = _logits(model, _batch())
    reloaded = PrunedBertForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    assert torch.allclose(_logits(reloaded, _batch()), expected, atol=1e-5)
    register_pruned_bert()
    auto = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    assert torch.allclose(_logits(auto, _batch()), expected, atol=1e-5)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["auto_map"]
    assert summary["params"]["dense"] - summary["params"]["exported"] == 771
    assert summary["exported_file_bytes"] < summary["dense_file_bytes"]
    assert summary["heads_kept"] == 7 and summary["neurons_kept"] == 21
    assert summary["latency"]["batch_size"] == 2 and summary["latency"]["ideal_ratio"] < 1
    assert summary["compressed_file_bytes"] is None  # every zero fit a structure


def test_bitmask_and_csr_round_trip_with_hand_sizes():
    weight = torch.tensor([[0.0, 1.5, 0.0, 0.0], [2.0, 0.0, 0.0, -3.0], [0.0] * 4])
    bits = to_bitmask(weight)
    assert bits["bits"].tolist() == [0b01001001, 0b00000000]  # row-major keep flags, 8 per byte
    assert bits["values"].tolist() == [1.5, 2.0, -3.0]
    assert torch.equal(from_bitmask(bits, tuple(weight.shape)), weight)
    csr = to_csr(weight)
    assert csr["crow"].tolist() == [0, 1, 3, 3] and csr["col"].tolist() == [1, 0, 3]
    assert csr["col"].dtype == torch.int16
    assert torch.equal(from_csr(csr, tuple(weight.shape)), weight)
    # 12 entries: bitmask 2 + 12 = 14 bytes; CSR 16 + 6 + 12 = 34; dense 48
    assert compress(weight)[0] == "bitmask"
    assert compress(torch.ones(2, 2))[0] == "dense"


def test_nm_round_trip_and_positions():
    weight = torch.tensor([[0.0, 5.0, 0.0, 7.0, 1.0, 0.0, 0.0, 0.0]])
    mask = weight != 0
    parts = to_nm(weight, mask, 2, 4)
    # group 1 keeps positions 1, 3; group 2 keeps position 0 and is padded with its first unkept, 1
    assert parts["values"].tolist() == [[5.0, 7.0, 1.0, 0.0]]
    assert parts["positions"].tolist() == [0b01110001]  # 2 bits each: 01 11 00 01
    assert torch.equal(from_nm(parts, (1, 8), 2, 4), weight)


def test_compressed_file_round_trip(tmp_path):
    torch.manual_seed(0)
    state = {"a": torch.randn(6, 8) * (torch.rand(6, 8) > 0.7), "b": torch.randn(5), "c": torch.randn(4, 8)}
    nm_mask = torch.zeros(4, 8, dtype=torch.bool)
    nm_mask[:, ::2] = True
    state["c"] = state["c"] * nm_mask
    counts = save_compressed(state, tmp_path / "w.safetensors", nm=(2, 4), masks={"c": nm_mask})
    assert counts["nm"] == 1 and counts["dense"] == 1
    back = load_compressed(tmp_path / "w.safetensors")
    assert all(torch.equal(back[k], v) for k, v in state.items())


SMOKE = [
    "model=tiny_bert",
    "task=rte",
    "trainer.max_steps=2",
    "task.max_train_examples=32",
    "task.max_eval_examples=16",
    "progress=false",
    "pruner=magnitude",
    "pruner.selection=structured",
    "sparsity=0.5",
]


@requires_shared_data()
def test_cell_with_export_true_and_the_export_cli(tmp_path, capsys):
    from seven_bench.conf import compose_config
    from seven_bench.run import run_cell
    from seven_bench.spec import build_spec

    spec = build_spec(compose_config([*SMOKE, "export=true"]))
    assert spec.cell_hash == build_spec(compose_config(SMOKE)).cell_hash  # export is no part of the cell
    record = run_cell(spec, tmp_path, progress=False, export=True)
    assert record["status"] == "ok", record["error"]
    export = record["export"]
    assert export["heads_kept"] + record["pruner"]["heads_removed"] == export["heads_total"]
    assert export["neurons_kept"] + record["pruner"]["neurons_removed"] == export["neurons_total"]
    assert export["params"]["exported"] < export["params"]["dense"]
    assert export["max_abs_logit_diff"] <= 1e-5  # the record's own check: sliced = masked on a random batch
    path = tmp_path / "runs" / spec.cell_hash / "record.json"
    assert main([str(path), "--batch-size", "2", "--seq-len", "16", "--repeats", "1"]) == 0
    assert json.loads(path.read_text())["export"]["latency"]["seq_len"] == 16
    assert "latency x" in capsys.readouterr().out
    plain = build_spec(compose_config([*SMOKE, "sparsity=0.25"]))
    run_cell(plain, tmp_path, progress=False)
    assert main([str(tmp_path / "runs" / plain.cell_hash)]) == 2
    assert "rerun it with export=true" in capsys.readouterr().err


def test_unstructured_export_is_stored_compressed(tmp_path):
    model = _masked_bert()
    with torch.no_grad():
        weight = model.bert.encoder.layer[0].intermediate.dense.weight
        weight.mul_(torch.rand(weight.shape, generator=torch.Generator().manual_seed(0)) > 0.9)
    summary = export_model(model, tmp_path / "out")
    assert summary["compressed_file_bytes"] is not None and summary["storage_formats"]["bitmask"] >= 1
    back = load_compressed(tmp_path / "out" / "compressed.safetensors")
    sliced = PrunedBertForSequenceClassification.from_pretrained(tmp_path / "out")
    assert all(torch.equal(back[k], v) for k, v in sliced.state_dict().items())


def test_nm_export_keeps_the_nm_layout_and_a_reexport_finds_it_from_zeros(tmp_path):
    from seven_bench.pruning.selection import nm_mask

    model = _bert()
    masks = {}
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".encoder.layer." in name and name.endswith("weight") and param.dim() == 2:
                masks[name] = nm_mask(param.abs() + 1e-3, 2, 4)  # 2:4 on every encoder matrix, nothing sliced
                param.mul_(masks[name])
    first = export_model(model, tmp_path / "a", masks=masks, nm=(2, 4))
    assert first["nm"] == [2, 4] and first["storage_formats"]["nm"] == len(masks)
    sliced = PrunedBertForSequenceClassification.from_pretrained(tmp_path / "a")
    again = export_model(sliced, tmp_path / "b", nm=(2, 4))  # no masks: the zeros hold the pattern
    assert again["storage_formats"]["nm"] == len(masks)
    back = load_compressed(tmp_path / "b" / "compressed.safetensors")
    assert all(torch.equal(back[k], v) for k, v in sliced.state_dict().items())
    weight = torch.randn(64, 64)
    fmt, parts = compress(weight, (2, 4), nm_mask(weight.abs(), 2, 4))
    # 2:4 of float32: 64 * 32 values (4 bytes) + 2 bits per value = 8192 + 512 bytes, vs 16384 dense
    assert fmt == "nm" and sum(t.numel() * t.element_size() for t in parts.values()) == 8192 + 512


def _record(pruner: dict, sparsity: float, achieved: float, value: float, seed: int, size: int, speedup: float):
    return {
        "status": "ok",
        "experiments": ["structured"],
        "spec": {
            "model": {"name": "minilm"},
            "task": {"name": "mrpc"},
            "pruner": pruner,
            "sparsity": sparsity,
            "seed": seed,
        },
        "metrics": {"reported_value": value, "reported_metric": "accuracy"},
        "sparsity": {"achieved": achieved},
        "export": {
            "exported_file_bytes": size,
            "latency": {"speedup": speedup, "batch_size": 32, "seq_len": 128, "device": "cpu"},
        },
    }


def test_structured_table_groups_dsp_by_its_weight_fraction(tmp_path):
    from seven_bench.tables.structured import build_structured, write_structured

    head = {"name": "magnitude", "selection": "head", "timing": "pre"}
    records = [
        _record({"name": "dsp", "timing": "pre"}, 0.5, 1 / 6, 0.80, 0, 2**20, 1.2),  # heads: 1/6 of the weights
        _record(head, 0.1667, 0.1667, 0.70, 0, 2**21, 1.1),
        _record(head, 0.1667, 0.1667, 0.74, 1, 2**21, 1.3),
        _record({"name": "dense", "timing": "none"}, 0.0, 0.0, 0.9, 0, 2**22, 1.0),
    ]
    table, long = build_structured(records)
    assert list(table.index) == ["Dense", "DSP (heads)", "Magnitude (heads)"]
    assert list(table.columns) == ["MRPC@17 (minilm)", "MRPC@17 (minilm) MiB", "MRPC@17 (minilm) speed-up"]
    assert table.loc["Magnitude (heads)"].tolist() == ["72.00 ± 2.83 (2)", "2.0", "1.20x"]
    assert table.loc["DSP (heads)"].tolist() == ["80.00 (1)", "1.0", "1.20x"]
    assert "structured: 3 methods" in write_structured(records, tmp_path)
    assert (tmp_path / "structured.md").read_text().count("|") > 10
