"""Options shared by several commands (one definition, one help text)."""

from __future__ import annotations

import click

no_verify = click.option(
    "--no-verify", "no_verify", is_flag=True,
    help="Load a model even if its flatbuffer does not match the SHA-256 in its metadata "
         "(it is then checked in a child process first).")

overwrite_file = click.option(
    "--overwrite", is_flag=True,
    help="Replace an existing output file that edgecnn did not write.")


def _alias_key(name: str) -> str:
    return f"edgecnn.alias.{name}"


def hidden_alias(old: str, name: str, type_=None):
    """An old spelling ``old`` of option ``name``, accepted but not shown in ``--help``, so
    scripts written against it keep working. The option ``name`` must take
    :func:`or_alias` as its callback."""
    def store(ctx: click.Context, _param, value):
        if value is not None:
            ctx.meta[_alias_key(name)] = value

    return click.option(old, f"alias_{name}", type=type_, default=None, hidden=True,
                        expose_value=False, callback=store)


def or_alias(ctx: click.Context, param: click.Parameter, value):
    """Callback of an option with a :func:`hidden_alias`: its value, else the alias's.

    Options given on the command line are processed before the others, so an alias given
    alone is stored before this option (left at its default) is processed.
    """
    return value if value is not None else ctx.meta.get(_alias_key(param.name or ""))


def score_threshold(help_text: str):
    """``--score-threshold`` (and the old ``--score`` of ``camera``, hidden)."""
    def decorate(f):
        f = click.option("--score-threshold", "score_threshold", type=float, default=None,
                         callback=or_alias, help=help_text)(f)
        return hidden_alias("--score", "score_threshold", float)(f)

    return decorate
