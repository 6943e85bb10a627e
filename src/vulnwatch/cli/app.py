"""The typer app, its global options, the exit codes and the config of one invocation.

Every verb module (``monitor``, ``scan``, ...) adds its commands to :data:`app`; :mod:`.main`
imports them all and runs it. Exit codes: 0 all good; 1 some images (or deliveries) failed;
2 bad configuration or usage.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from .. import __version__, logs
from ..config import Config, ConfigError, load_config
from .common import State, console, err_console

app = typer.Typer(add_completion=False, no_args_is_help=False, rich_markup_mode=None,
                  help="Continuous vulnerability monitoring for container images: tells you when findings change.")

EXIT_OK, EXIT_FAILURES, EXIT_CONFIG = 0, 1, 2


def find_config(path: Optional[Path]) -> Optional[Path]:
    """--config, else $VULNWATCH_CONFIG, else ./vulnwatch.yaml, else None (embedded defaults)."""
    if path is not None:
        return path
    env = os.environ.get("VULNWATCH_CONFIG")
    if env:
        return Path(env)
    here = Path("vulnwatch.yaml")
    return here if here.exists() else None


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config file (default: $VULNWATCH_CONFIG or ./vulnwatch.yaml; else embedded defaults)."),
    log_format: str = typer.Option("text", "--log-format", help="text or json (one JSON object per line, for machines)."),
    log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING, ERROR."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(f"vulnwatch {__version__}")
        raise typer.Exit(0)
    if log_format not in ("text", "json"):
        err_console.print(f"--log-format must be text or json, not {log_format!r}")
        raise typer.Exit(EXIT_CONFIG)
    logs.setup(log_format, log_level)
    ctx.obj = State(config_path=find_config(config), log_format=log_format)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


def load(state: State) -> Config:
    """The config for this invocation; exits 2 with the precise error on a bad config."""
    if state.config is not None:
        return state.config
    try:
        cfg = load_config(state.config_path) if state.config_path else Config.default()
    except ConfigError as e:
        err_console.print(f"[bold red]config error[/]\n{logs.redact(str(e))}", highlight=False)
        raise typer.Exit(EXIT_CONFIG)
    from ..build import register_config_secrets

    register_config_secrets(cfg)
    state.config = cfg
    return cfg


__all__ = ["app", "load", "EXIT_OK", "EXIT_FAILURES", "EXIT_CONFIG"]
