"""electra: pre-train text encoders with replaced token detection, fine-tune and export them.

The Python API (`electra.pretrain`, `finetune`, `evaluate`, `export`, `load`) lives in
`electra.api`; the `electra` command is a thin layer over it (see `electra --help`)."""

__version__ = "0.1.0"

from electra.api import evaluate, export, finetune, load, pretrain  # noqa: E402

__all__ = ["evaluate", "export", "finetune", "load", "pretrain"]
