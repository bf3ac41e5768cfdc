"""`electra doctor RUN` and `electra inspect CHECKPOINT`: read what a run left on disk and say
what state it is in and what to do next, without loading a model or touching a file.

doctor replays the run's metrics through the same health checks the loop runs (so runs from
before an alarm existed, or runs that crashed, are diagnosed too), checks every checkpoint's
checksums and the data's shards, and ends with one suggested command."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import safe_open

from electra.config import PretrainConfig, load_json
from electra.data.shards import read_manifest
from electra.errors import ConfigError, ElectraError
from electra.train import checkpoint as ckpt
from electra.train.health import HealthMonitor
from electra.train.log import format_count, read_metrics
from electra.train.state import run_end, verify_shards
from electra.train.validate import context_line, learned_context


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    next_command: str = ""

    def text(self) -> str:
        out = [*self.lines]
        out += [f"  problem: {p}" for p in self.problems] or ["  no problems found"]
        if self.next_command:
            out.append(f"next: {self.next_command}")
        return "\n".join(out)


def doctor(run_dir: Path) -> Report:
    if (run_dir / "meta.json").is_file():
        here = run_dir.resolve()
        run = f" ({here.parent.parent})" if here.parent.name == "checkpoints" else ""
        raise ConfigError(f"{run_dir} is one checkpoint of a run; pass the run directory{run}, or "
                          f"electra inspect {run_dir}")
    if not run_dir.exists():
        raise ConfigError(f"{run_dir} does not exist; pass the --out directory of an electra pretrain run")
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir} holds no run (no config.json); pass the --out directory of "
                          "an electra pretrain run")
    rep = Report(lines=[])
    last, newest = _checkpoints(run_dir, rep)
    # the config the run was last trained under: the newest intact checkpoint's (hashed just above)
    saved = newest / "config.json" if newest is not None and (newest / "config.json").is_file() else None
    cfg = load_json(PretrainConfig, saved or run_dir / "config.json")
    end = run_end(cfg)  # train.steps, or where train.budget_flops is spent
    rep.lines.insert(0, f"run {run_dir} (preset {cfg.preset}, {end:,} steps planned"
                        + (f": train.budget_flops={cfg.train.budget_flops:g} ends it before train.steps"
                           if end < cfg.train.steps else "") + ")")
    _data(run_dir, rep)
    records, torn = read_metrics(run_dir / "metrics.jsonl")
    if torn:
        rep.lines.append(f"  metrics: {torn} unreadable line(s) in metrics.jsonl (a torn write), ignored")
    _replay(cfg, records, rep, end)
    if last is None:
        rep.next_command = f"electra pretrain --out {run_dir} ...  (no checkpoint: start it again)"
    elif last < end:
        rep.next_command = f"electra pretrain --resume --out {run_dir}"
    else:
        rep.next_command = (f"electra evaluate {run_dir} --tasks sst2 --glue-dir PATH/TO/glue "
                            f"--seeds 3 --out {run_dir / 'eval'}")
    return rep


def _checkpoints(run_dir: Path, rep: Report) -> tuple[int | None, Path | None]:
    """The newest intact checkpoint's step and directory; damaged ones become problems."""
    found = ckpt.list_checkpoints(run_dir / "checkpoints")
    good, good_path = None, None
    for step, path in found:
        why = ckpt.problem(path)
        if why:
            rep.problems.append(f"checkpoint {path.name} is damaged ({why}); --resume skips it")
        else:
            good, good_path = step, path
    rep.lines.append(f"  checkpoints: {len(found)} ({', '.join(p.name for _, p in found) or 'none'}); "
                     f"newest intact: {'step ' + str(good) if good is not None else 'none'}")
    return good, good_path


def _data(run_dir: Path, rep: Report) -> None:
    saved = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    data_dir = Path(saved.get("data") or run_dir / "data")
    try:
        manifest = read_manifest(data_dir)
        hashed = verify_shards(data_dir, manifest, force=True)
        rep.lines.append(f"  data: {data_dir}: {manifest.totals.get('rows', '?')} rows of "
                         f"{manifest.seq_len} tokens, {hashed} shard(s) match their checksums")
    except ElectraError as e:
        rep.problems.append(f"data: {e}")


def _replay(cfg: PretrainConfig, records: list[dict], rep: Report, run_steps: int) -> None:
    monitor = HealthMonitor(cfg, max_bad_steps=cfg.train.max_bad_steps, run_steps=run_steps)
    alarms: dict[str, tuple[int, str]] = {}
    train = [r for r in records if r.get("kind") == "train"]
    valid = [r for r in records if r.get("kind") == "valid"]
    for r in records:
        for a in monitor.on_record(r):
            alarms[a.name] = (r.get("step", 0), a.line())
    if train:
        t = train[-1]
        rep.lines.append(f"  progress: step {t['step']:,} of {run_steps:,}, "
                         f"{format_count(t.get('tokens', 0))} tokens, last loss {t['loss']:.4f}, "
                         f"{format_count(t.get('tokens_per_s', 0))} tokens/s")
    if valid and "nocontext_mlm_loss" in valid[-1]:
        v = valid[-1]
        gen_ok, disc_ok = learned_context(v)
        rep.lines.append(f"  validation @{v['step']}: {context_line(v)}")
        has_disc = v.get("disc_auc") == v.get("disc_auc") and cfg.objective.detects_replacements
        rep.lines.append(f"  learned context: generator {'yes' if gen_ok else 'no'}"
                         + (f", discriminator {'yes' if disc_ok else 'no'}" if has_disc else ""))
    for name, (step, line) in sorted(alarms.items(), key=lambda kv: kv[1][0]):
        if name in monitor.active:
            rep.problems.append(f"step {step}: {line}")
        else:  # the condition cleared later in the run
            rep.lines.append(f"  cleared since: step {step}: {line}")


def inspect(path: Path) -> list[str]:
    """What a checkpoint holds: step, tokens, the model's shape, files and their integrity."""
    p = ckpt.resolve_checkpoint(path, verify=False)  # damage is reported below, not raised
    meta = ckpt.read_meta(p)
    lines = [f"checkpoint {p}",
             f"  step {meta.get('step')}, {format_count(meta.get('tokens', 0))} tokens, "
             f"{meta.get('flops', 0):.3g} training FLOPs, saved by {meta.get('world_size', 1)} process(es)",
             f"  data {meta.get('data', '?')} (seq_len {meta.get('seq_len', '?')}), tokenizer "
             f"fingerprint {str(meta.get('tokenizer_fingerprint', '?'))[:12]}"]
    if (p / "config.json").is_file():
        cfg = load_json(PretrainConfig, p / "config.json")
        m, g = cfg.model, cfg.generator_model()
        lines.append(f"  discriminator {m.num_layers} x {m.hidden_size} (heads {m.num_heads}, "
                     f"embeddings {m.embedding_size}, vocab {m.vocab_size}); generator "
                     f"{g.num_layers} x {g.hidden_size}; sharing {cfg.objective.sharing}")
    why = ckpt.problem(p)
    if (p / "model.safetensors").is_file() and why is None:  # a damaged file is reported, not read
        with safe_open(str(p / "model.safetensors"), "pt") as f:
            counts: dict[str, int] = {}
            for k in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                part = k.split(".", 1)[0]
                shape = f.get_slice(k).get_shape()
                n = 1
                for d in shape:
                    n *= d
                counts[part] = counts.get(part, 0) + n
        lines.append("  parameters: " + ", ".join(f"{k} {format_count(v)}" for k, v in sorted(counts.items())))
    files = meta.get("files", {})
    lines.append("  files: " + (f"DAMAGED: {why}" if why else f"{len(files)} checked against their "
                                "checksums, all intact" if files else "no checksums recorded (an older checkpoint)"))
    return lines
