"""AuditCallback on a real ``transformers.Trainer`` (issue 20): a tiny randomly initialised BERT
built from a config (nothing downloaded), a synthetic token set with a learnable label rule.
The README's example is executed verbatim; the audit must change nothing in the training."""

from __future__ import annotations

import json
import math
import os
import warnings

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")          # the Trainer needs it

from transformers import TrainerCallback  # noqa: E402

from approx_audit.auditor.probes import make_probes  # noqa: E402
from approx_audit.auditor.results import validate_results  # noqa: E402

# The README section's example, run as it is written (in a temporary folder).
README_EXAMPLE = '''
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
from approx_audit.integrations.transformers import AuditCallback

config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=32, num_labels=2)
torch.manual_seed(0)
model = BertForSequenceClassification(config)          # random weights, nothing downloaded

g = torch.Generator().manual_seed(0)
ids = torch.randint(1, 100, (96, 16), generator=g)
data = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
        "labels": (ids[:, 0] < 50).long()}              # a rule the model can learn
train_dataset = [{k: v[i] for k, v in data.items()} for i in range(96)]

callback = AuditCallback(out="audit", probes="standard", data=data, f_lower=0.0)
args = TrainingArguments(output_dir="hf-out", max_steps=12, per_device_train_batch_size=8,
                         learning_rate=1e-3, report_to=[], save_strategy="no",
                         logging_strategy="no", use_cpu=True, dataloader_num_workers=0, seed=0)
trainer = Trainer(model=model, args=args, train_dataset=train_dataset, callbacks=[callback])
trainer.train()
print(callback.results["status"], [(v.bound.id, v.verdict.value) for v in callback.verdicts])
'''


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _setup(seed: int = 0):
    """The example's model and data (the same construction, for the comparison runs)."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=32,
                        num_labels=2)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 100, (96, 16), generator=g)
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": (ids[:, 0] < 50).long()}
    return model, data, [{k: v[i] for k, v in data.items()} for i in range(96)]


def _train(tmp_path, name, callbacks, collator=None, **overrides):
    from transformers import Trainer, TrainingArguments

    model, data, dataset = _setup()
    kw = dict(output_dir=str(tmp_path / name), max_steps=12, per_device_train_batch_size=8,
              learning_rate=1e-3, report_to=[], save_strategy="no", logging_strategy="no",
              use_cpu=True, dataloader_num_workers=0, seed=0, disable_tqdm=True)
    kw.update(overrides)
    trainer = Trainer(model=model, args=TrainingArguments(**kw), train_dataset=dataset,
                      callbacks=list(callbacks(data)), data_collator=collator)
    trainer.train()
    return trainer, model


class _Losses(TrainerCallback):
    """The Trainer's own logged loss of every step (logging_steps=1)."""

    def __init__(self):
        self.losses = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


def _steps(callback):
    return [r for r in callback.auditor.records if r["record"] == "step"]


def test_readme_example_audits_twelve_steps_and_changes_nothing(tmp_path, monkeypatch, capsys):
    """The issue's done-when: the reports and results.json written, 12 audited steps, the
    probes at their schedule without an error, and the trained model bit-identical to one
    trained without the callback."""
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(README_EXAMPLE, "README.md", "exec"), ns)
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith("completed [") for line in printed), printed
    callback, audited = ns["callback"], ns["model"]
    for name in ("results.json", "report.html", "report.md", "trace.jsonl"):
        assert (tmp_path / "audit" / name).exists(), name
    res = json.loads((tmp_path / "audit" / "results.json").read_text())
    validate_results(res)
    assert res["status"] == "completed" and callback.results["status"] == "completed"
    assert res["config"]["api"]["optimizer"] == "AdamW"
    assert res["config"]["api"]["scheduler"] == "LambdaLR"
    steps = _steps(callback)
    assert len(steps) == 12 and [r["step"] for r in steps] == list(range(12))
    assert not any(r.get("unaudited") for r in steps)
    assert all(r["batch_size"] == 8 and math.isfinite(r["loss"]) and r["grad_norm"] > 0
               for r in steps)
    smooth = next(p for p in make_probes("standard") if p.name == "local_smoothness")
    due = [t for t in range(12) if smooth.due(t)]
    assert due and [r["step"] for r in steps if r.get("local_smoothness")] == due
    end = callback.auditor.records[-1]
    assert end["record"] == "end" and end["probe_errors"] == {}
    assert not any("failed" in str(r.get("notes", "")) for r in steps)
    assert callback.loss_scale == 1.0
    # the full-data checkpoints ran on data= (x_0 and the last step)
    init = next(r for r in callback.auditor.records if r["record"] == "init")
    assert math.isfinite(init["full_loss"])

    _, plain = _train(tmp_path, "plain", lambda data: [])
    a, b = audited.state_dict(), plain.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "the audit changed the training"


def test_gradient_accumulation_concatenates_the_micro_batches(tmp_path):
    """gradient_accumulation_steps=2: every recorded step is one batch of 16 examples, its loss
    is the Trainer's own (the weighted sum of the micro-batch losses), and the audited function
    is the one the Trainer differentiates (transformers 5.25 does not divide by the
    accumulation steps for a model whose forward takes **kwargs, e.g. BERT: c = 2)."""
    from approx_audit.integrations.transformers import AuditCallback

    logged = _Losses()
    holder = {}

    def callbacks(data):
        holder["cb"] = AuditCallback(out=None, probes="loss,grad_norm,local_smoothness@5",
                                     data=None)
        return [holder["cb"], logged]

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        trainer, _ = _train(tmp_path, "ga", callbacks, gradient_accumulation_steps=2,
                            max_steps=4, logging_strategy="steps", logging_steps=1)
    callback = holder["cb"]
    steps = _steps(callback)
    assert len(steps) == 4 and [r["batch_size"] for r in steps] == [16] * 4
    assert not any(r.get("unaudited") for r in steps)
    assert [r["loss"] for r in steps] == pytest.approx(logged.losses[:4], rel=1e-6)
    assert callback.loss_scale == (2.0 if trainer.model_accepts_loss_kwargs else 1.0)
    said = [str(w.message) for w in seen if "audited function is f = 2" in str(w.message)]
    assert bool(said) == (callback.loss_scale == 2.0)
    assert callback.auditor.records[-1]["probe_errors"] == {}


def test_the_captured_batch_is_the_training_batch(tmp_path):
    """The recorded loss of every step is the Trainer's own logged loss (the batch the hook
    took is the one trained on, with training's dropout masks); the probes' evaluations of
    the model are never taken as a batch; with clipping the raw norm is the one the Trainer
    clipped."""
    from approx_audit.integrations.transformers import AuditCallback

    logged = _Losses()
    holder = {}

    def callbacks(data):
        holder["cb"] = AuditCallback(out=None, probes="standard", data=data)
        return [holder["cb"], logged]

    _train(tmp_path, "log", callbacks, logging_strategy="steps", logging_steps=1,
           max_grad_norm=0.05)
    steps = _steps(holder["cb"])
    assert len(logged.losses) == 12 == len(steps)
    assert steps[0]["loss"] == pytest.approx(logged.losses[0], rel=1e-7)
    assert [r["loss"] for r in steps] == pytest.approx(logged.losses, rel=1e-7)
    assert all(r["batch_size"] == 8 for r in steps)
    clipped = [r for r in steps if r.get("grad_clipped")]
    assert clipped, "max_grad_norm=0.05 clips these steps"
    assert all(r["grad_norm_raw"] > 0.05 and r["grad_norm"] == pytest.approx(0.05, rel=1e-4)
               for r in clipped)


def test_refused_and_validated_inputs():
    from approx_audit.integrations.transformers import AuditCallback

    with pytest.raises(ValueError, match="labels"):
        AuditCallback(data={"input_ids": torch.zeros(4, 3, dtype=torch.long)})
    with pytest.raises(Exception, match="nosuchprobe"):
        AuditCallback(probes="nosuchprobe")


def test_accumulation_with_a_loss_normalized_by_num_items_in_batch(tmp_path):
    """A causal LM divides its summed token loss by the num_items_in_batch the Trainer passes:
    the micro-batch losses add up to the mean over the step's tokens, so the audited function
    is model(**batch).loss itself (c = 1), found by the once-per-run check; the recorded loss
    is still the Trainer's."""
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    from approx_audit.integrations.transformers import AuditCallback

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2,
                                       n_head=2))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 100, (64, 16), generator=g)
    dataset = [{"input_ids": ids[i], "attention_mask": torch.ones_like(ids[i]),
                "labels": ids[i]} for i in range(64)]
    callback, logged = AuditCallback(out=None, probes="loss,grad_norm"), _Losses()
    args = TrainingArguments(output_dir=str(tmp_path / "lm"), max_steps=3,
                             per_device_train_batch_size=4, gradient_accumulation_steps=2,
                             learning_rate=1e-3, report_to=[], save_strategy="no",
                             logging_strategy="steps", logging_steps=1, use_cpu=True,
                             dataloader_num_workers=0, seed=0, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=dataset, callbacks=[callback, logged]).train()
    steps = _steps(callback)
    assert [r["batch_size"] for r in steps] == [8] * 3
    assert callback._uses_items is True and callback.loss_scale == 1.0
    assert [r["loss"] for r in steps] == pytest.approx(logged.losses[:3], rel=1e-6)


def test_micro_batches_of_different_lengths_are_refused_and_training_goes_on(tmp_path):
    """Dynamic padding with accumulation: the step's micro-batches cannot be one batch without
    re-padding (model-specific), so those steps are recorded as unaudited, with the reason."""
    from approx_audit.integrations.transformers import AuditCallback

    calls = []

    def collate(features):               # lengths 12, 16, 12, 16, …: as a padding collator
        calls.append(None)
        n = 12 if len(calls) % 2 else 16
        return {k: torch.stack([f[k] for f in features])[:, :n] if k != "labels"
                else torch.stack([f[k] for f in features]) for k in features[0]}

    holder = {}

    def callbacks(data):
        holder["cb"] = AuditCallback(out=None, probes="loss,grad_norm")
        return [holder["cb"]]

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        trainer, _ = _train(tmp_path, "pad", callbacks, collator=collate,
                            gradient_accumulation_steps=2, max_steps=2)
    assert any("different shapes for 'input_ids'" in str(w.message) for w in seen)
    steps = _steps(holder["cb"])
    assert trainer.state.global_step == 2 and len(steps) == 2
    assert all(r.get("unaudited") for r in steps)


def test_finish_after_a_failed_train_writes_the_results(tmp_path):
    """train() raised: the Trainer skips on_train_end; callback.finish(status="error") writes
    results.json with the finished steps and removes the hooks from the model."""
    from approx_audit.integrations.transformers import AuditCallback

    class _Boom(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise RuntimeError("boom")

    holder = {}

    def callbacks(data):
        holder["cb"] = AuditCallback(out=tmp_path / "audit", probes="loss,grad_norm")
        return [holder["cb"], _Boom()]

    with pytest.raises(RuntimeError, match="boom"):
        _train(tmp_path, "boom", callbacks)
    callback = holder["cb"]
    callback.finish(status="error", message="RuntimeError: boom")
    res = json.loads((tmp_path / "audit" / "results.json").read_text())
    assert res["status"] == "error" and len(_steps(callback)) == 3
    model = callback.auditor.model
    assert not model._forward_pre_hooks and not model._forward_hooks
    callback.finish()                                  # a second call does nothing
