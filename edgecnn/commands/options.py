"""Options shared by several commands (one definition, one help text)."""

from __future__ import annotations

import click

no_verify = click.option(
    "--no-verify", "no_verify", is_flag=True,
    help="Load a model even if its flatbuffer does not match the SHA-256 in its metadata "
         "(it is then checked in a child process first).")
