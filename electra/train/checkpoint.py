"""Atomic, strictly-checked checkpoints that resume a run exactly.

Layout: `<run>/checkpoints/step_00001000/` holding `model.safetensors` (the unwrapped model,
shared weights stored once), `trainer.pt` (optimizer, scheduler, scaler, loader cursor),
`rng_<rank>.pt` (each rank's RNG states) and `meta.json` (step, tokens, FLOPs, config,
tokenizer fingerprint). A checkpoint is written into a temporary directory and renamed, so a
crash never leaves a half-written `step_*` directory; the one written and the `keep_last` - 1 before it are kept. This
module only moves state in and out of files; `pretrained.py` builds models from them."""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from electra.errors import CheckpointError, TokenizerError, first_line
from electra.files import atomic_dir, sha256_file, tree_checksums

log = logging.getLogger(__name__)
_STEP_DIR = re.compile(r"^step_(\d+)$")


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers, each shared tensor once (under its first name)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    persistent = model.state_dict(keep_vars=True).keys()  # leaves out non-persistent buffers
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if id(t) in seen or name not in persistent:
            continue
        seen.add(id(t))
        out[name] = t.detach()
    return out


@torch.no_grad()
def load_model_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Strict load: the same names and shapes, or a CheckpointError naming the difference."""
    target = model_state(model)
    missing, unexpected = sorted(set(target) - set(tensors)), sorted(set(tensors) - set(target))
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"{source} does not fit this model ({what}); it was saved from a "
                              "different model config")
    for name, t in target.items():
        if t.shape != tensors[name].shape:
            raise CheckpointError(f"{source}: {name} has shape {tuple(tensors[name].shape)}, the "
                                  f"model expects {tuple(t.shape)}; it was saved from a different config")
        t.copy_(tensors[name])


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir()
             if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return sorted(found)


def problem(path: Path) -> str | None:
    """Why the checkpoint at `path` cannot be resumed (missing or damaged files), or None."""
    try:
        meta = read_meta(path)
    except CheckpointError as e:
        return str(e)
    for name, digest in meta.get("files", {}).items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if sha256_file(f) != digest:
            return f"{name} does not match its checksum"
    return None


def set_aside_after(ckpt_dir: Path, target: Path) -> list[Path]:
    """Rename the checkpoints newer than `target` to `rolled_back-step_*` (kept to inspect, never
    resumed or counted by keep_last); returns their new paths."""
    step = int(_STEP_DIR.match(target.name).group(1))
    moved = []
    for s, path in list_checkpoints(ckpt_dir):
        if s > step:
            n = 1 + sum(1 for p in ckpt_dir.glob(f"rolled_back*-{path.name}"))  # an earlier roll-back's too
            moved.append(path.rename(path.with_name(f"rolled_back{n if n > 1 else ''}-{path.name}")))
    return moved


def last_config(run_dir: Path) -> Path:
    """The config a run was last trained under: that of its newest checkpoint, so what an earlier
    `--resume` changed (train.steps, optim.lr after a divergence, ...) stays changed on the next
    plain `--resume`; the run's config.json (as started) before its first checkpoint. Not hashed:
    resuming checks the checkpoint it loads."""
    for _, path in reversed(list_checkpoints(run_dir / "checkpoints")):
        if (path / "config.json").is_file():
            return path / "config.json"
    return run_dir / "config.json"


def _not_a_run(p: Path) -> str:
    """What to say of a directory with no checkpoints: what it is instead, if it is ours or HF's."""
    if (p / "finetune.json").is_file():
        return f"{p} is a fine-tuned model, not a pre-training run; export it with electra export {p} --out DIR"
    if (p / "run.json").is_file() or (p / "checkpoints").is_dir():  # it holds a config.json too
        return (f"{p} is a pre-training run with no checkpoint yet (it stopped before its first save); "
                "run the command that started it again, or pass a run that has checkpoints")
    if (p / "config.json").is_file():
        return f"{p} is already a Hugging Face model directory; transformers loads it as it is"
    return (f"{p} is neither a pre-training run or checkpoint (no checkpoints/ or meta.json) nor a fine-tuned "
            "model (no finetune.json); pass a directory written by electra pretrain or electra finetune "
            "(fine-tuning also starts from a Hugging Face ELECTRA/BERT directory)")


def latest_checkpoint(ckpt_dir: Path) -> Path:
    """The newest checkpoint whose files are all intact, to resume from; damaged newer ones are
    named and skipped (left on disk, never deleted)."""
    if not list_checkpoints(ckpt_dir):
        raise CheckpointError(f"--resume: {ckpt_dir} holds no checkpoint; start without --resume")
    return newest_intact(ckpt_dir, "resuming from", "start the run again without --resume")


def newest_intact(ckpt_dir: Path, doing: str, fix: str) -> Path:
    """The newest checkpoint in `ckpt_dir` that passes its checksums. Skipping a damaged one is
    a warning (`doing` says what happens instead), never silent: it loses the steps after the
    one used. None intact is a CheckpointError ending in `fix`."""
    skipped = []
    for _, path in reversed(list_checkpoints(ckpt_dir)):
        why = problem(path)
        if why is None:
            if skipped:
                log.warning("%s %s; skipped %s", doing, path.name, "; ".join(skipped))
            return path
        skipped.append(f"{path.name} ({why})")
    raise CheckpointError(f"no intact checkpoint in {ckpt_dir}: {'; '.join(skipped)}; {fix}")


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(ckpt_dir: Path, step: int, model: nn.Module, trainer: dict[str, Any],
                    rng_states: list[dict[str, Any]], meta: dict[str, Any], keep_last: int,
                    extra: Callable[[Path], None] | None = None) -> Path:
    """Write `step_XXXXXXXX/` atomically (main process; `rng_states` holds every rank's RNG, in
    rank order); `extra(tmp_dir)` adds files such as the config and tokenizer. Only the newest
    `keep_last` checkpoints are kept: the one written and the newest older ones (a damaged newer
    one, left from before a resume, never pushes the new save out)."""
    final = ckpt_dir / f"step_{step:08d}"
    with atomic_dir(final, replace=True) as tmp:  # re-saving a step (after a resume) replaces it
        save_file({k: v.contiguous() for k, v in model_state(model).items()}, str(tmp / "model.safetensors"))
        torch.save(trainer, tmp / "trainer.pt")
        for rank, state in enumerate(rng_states):
            torch.save(state, tmp / f"rng_{rank}.pt")
        if extra is not None:
            extra(tmp)
        files = tree_checksums(tmp)  # verified on load: a torn or damaged file is never resumed
        (tmp / "meta.json").write_text(json.dumps({"step": step, **meta, "files": files}, indent=2) + "\n")
    older = [p for s, p in list_checkpoints(ckpt_dir) if s < step]
    for old in older[:max(0, len(older) - (keep_last - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in ckpt_dir.glob(".step_*.tmp-*"):  # half-written by a process killed mid-save
        shutil.rmtree(stale, ignore_errors=True)
    return final


def read_meta(path: Path) -> dict[str, Any]:
    """meta.json, checked for what resuming reads: integer `step` and `tokens`, `files` mapping
    names to sha256 digests, `tokenizer_fingerprint` a string (or absent)."""
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} has no meta.json; it is not a checkpoint (or it is incomplete)") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        meta = None
    if not _meta_ok(meta):
        raise CheckpointError(f"{path}/meta.json is corrupt; delete {path} and resume from an earlier checkpoint")
    return meta


def _meta_ok(meta: Any) -> bool:
    if not (isinstance(meta, dict) and all(type(meta.get(k)) is int for k in ("step", "tokens"))):
        return False
    files = meta.get("files", {})
    return (isinstance(files, dict) and all(_inside(name) and isinstance(digest, str)
                                            for name, digest in files.items())
            and isinstance(meta.get("tokenizer_fingerprint", ""), (str, type(None))))


def _inside(name: str) -> bool:
    """A printable relative path that stays inside the checkpoint directory."""
    parts = PurePosixPath(name).parts
    return bool(parts) and name.isprintable() and not name.startswith("/") and ".." not in parts


def check_tokenizer(path: Path, meta: dict[str, Any], fingerprint: str, where: str) -> None:
    """The checkpoint at `path` was trained with the tokenizer whose fingerprint is given."""
    if meta.get("tokenizer_fingerprint") not in (None, fingerprint):
        raise TokenizerError(f"{path} was trained with a different tokenizer than {where}; use the "
                             "tokenizer/ saved inside the checkpoint")


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path / "model.safetensors"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} has no model.safetensors; the checkpoint is incomplete") from None
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}/model.safetensors is corrupt or truncated ({e}); delete {path} "
                              "and resume from an earlier checkpoint") from None


def load_trainer(path: Path, rank: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trainer state, this rank's RNG state)."""
    out = []
    for name in ("trainer.pt", f"rng_{rank}.pt"):
        try:
            out.append(torch.load(path / name, map_location="cpu", weights_only=True))
        except FileNotFoundError:
            raise CheckpointError(f"{path} has no {name}; it was saved with fewer processes or is "
                                  "incomplete") from None
        except Exception as e:  # noqa: BLE001 - any unpickling failure means a damaged file
            raise CheckpointError(f"{path}/{name} is corrupt or truncated ({first_line(e)}); "
                                  f"delete {path} and resume from an earlier checkpoint") from None
    return out[0], out[1]


def resolve_checkpoint(path: str | Path, *, verify: bool = True) -> Path:
    """A run directory (-> its newest checkpoint) or a checkpoint directory. With `verify` (export,
    fine-tuning) the files must match their checksums: a run falls back to its newest intact
    checkpoint, a damaged checkpoint named directly is an error. `inspect` passes False to
    report the damage itself."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p} does not exist; pass a run or checkpoint directory (electra pretrain --out)")
    if p.is_file():
        raise CheckpointError(f"{p} is a file; pass a run or checkpoint directory")
    if (p / "meta.json").is_file() or _STEP_DIR.match(p.name):
        if verify:
            read_meta(p)  # a missing or corrupt meta.json has its own message
            if why := problem(p):
                raise CheckpointError(f"checkpoint {p} is damaged ({why}); pass its run directory (the "
                                      "newest intact checkpoint is used) or an earlier checkpoint")
        return p
    ckpts = list_checkpoints(p / "checkpoints")
    if not ckpts:
        raise CheckpointError(_not_a_run(p))
    if not verify:
        return ckpts[-1][1]
    return newest_intact(p / "checkpoints", f"{p}: using", "restore the damaged files from a copy, or "
                         "train the run again")
