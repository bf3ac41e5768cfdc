"""electra: pre-train text encoders with replaced token detection, fine-tune and export them.

Entry point: the `electra` command (see `electra --help`)."""

__version__ = "0.1.0"
