"""The typer app, its global options, the exit codes and the config of one invocation.

Every verb module (``monitor``, ``scan``, ...) adds its commands to :data:`app`; :mod:`.main`
imports them all and runs it.

Exit codes (each verb's ``--help`` lists those it uses):

* ``0`` done, nothing to report;
* ``1`` done, with something to act on: ``scan`` found findings (``--exit-code`` /
  ``--fail-on``; the code is ``--exit-code``'s), ``run`` had images, registries or deliveries
  fail (the others were scanned and recorded);
* ``2`` bad configuration or usage (an unknown option or value, a config file with problems);
* ``3`` could not run: the image cannot be opened, the output file cannot be written, the state
  store or the vulnerability data cannot be used, ``--timeout`` reached, an internal error;
* ``75`` (sysexits' EX_TEMPFAIL) ``run`` found another cycle holding the store (its lease) and
  did nothing: try again later, or pass ``--wait``;
* ``130`` interrupted (Ctrl-C).

Every option can also be set with an environment variable ``VULNWATCH_<OPTION>`` (``--severity``
-> ``VULNWATCH_SEVERITY``, ``--no-deliver`` -> ``VULNWATCH_DELIVER=false``); the command line
wins. ``--config``, ``--quiet`` may be given before or after the verb.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Optional

import typer
from typer.core import TyperGroup

from .. import __version__, logs
from .common import State, report

if TYPE_CHECKING:  # the config (pydantic) loads when a verb reads it, not for --help
    from ..config import Config, ConfigError

log = logging.getLogger("vulnwatch.cli")

EXIT_OK, EXIT_FAILURES, EXIT_CONFIG, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_BUSY = 75
EXIT_INCOMPLETE = 4
"""``scan``: the advisory data does not cover an ecosystem or release the image needs (the report
says which); ``--allow-missing-data`` (``vulndb.allow_missing_data``) accepts that."""
"""Another process holds the store's cycle lease; nothing was done (sysexits' EX_TEMPFAIL)."""

EXIT_CODES_HELP = """\b
Exit codes:
  0    done, nothing to report
  1    done, something to act on: scan found findings (--exit-code N / --fail-on: N),
       run had images, registries or deliveries fail
  2    bad configuration or usage
  3    could not run (image, output file, state store or data unusable; --timeout)
  4    scan: the advisory data does not cover an ecosystem/release the image needs
       (--allow-missing-data accepts it)
  75   run: another cycle holds the store; nothing done (--wait waits for it)
  130  interrupted
\b
Every option is also read from VULNWATCH_<OPTION> (--log-level: VULNWATCH_LOG_LEVEL).
--config and --quiet work before or after the verb."""


def exit_codes(*lines: str) -> str:
    """A verb's ``--help`` epilog listing the exit codes it uses."""
    return "\b\nExit codes:\n" + "\n".join(f"  {line}" for line in lines) + "\n"


ENV_PREFIX = "VULNWATCH_"


def envvar_for(*names: str) -> str:
    """``VULNWATCH_<LONG_NAME>`` for an option's names (``--min-severity`` -> ``VULNWATCH_MIN_SEVERITY``)."""
    long = next(n for n in names if n.startswith("--")).split("/", 1)[0]
    return ENV_PREFIX + long[2:].upper().replace("-", "_")


def option(default: Any, *names: str, **kwargs: Any) -> Any:
    """``typer.Option`` with the environment variable every option has (see the module docstring)."""
    return typer.Option(default, *names, envvar=envvar_for(*names), **kwargs)


def config_option() -> Any:
    return option(None, "--config", "-c", help="Config file (default: ./vulnwatch.yaml, else embedded defaults). "
                                               "Also accepted before the verb.")


def quiet_option() -> Any:
    return option(False, "--quiet", "-q", help="No progress, notes or summaries on stderr: results, warnings and "
                                               "errors only. Also accepted before the verb.")


LogFormat = Literal[logs.FORMATS]  # type: ignore[valid-type]
TableOrJson = Literal["table", "json"]
"""``--format`` of the verbs that print a table or JSON."""


_USAGE_ERRORS = tuple(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
"""The base of typer's usage errors (its own click), shown by typer as usage errors (exit 2)."""


class Group(TyperGroup):
    """Turns errors no verb handled into one line and exit code 3 (no tracebacks for people;
    the traceback is logged at DEBUG)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, *_USAGE_ERRORS, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001  (the last line of defence)
            state = ctx.obj if isinstance(ctx.obj, State) else None
            what = _known_error(e)
            if what is None:
                log.debug("internal error", exc_info=True)
                what = (f"internal error: {type(e).__name__}: {e}; this is a bug, please report it (with "
                        "--log-level DEBUG for the traceback)")
            report(state, "error", "error", f"error: {what}", error_type=type(e).__name__)
            raise typer.Exit(EXIT_ERROR) from None


def _known_error(e: Exception) -> str | None:
    """One line for the errors that are the environment's, not a bug: files, the store."""
    from ..store.interface import StoreError

    if isinstance(e, StoreError):
        return f"state store: {e}"
    if isinstance(e, OSError):
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return f"{where}{e.strerror or e}"
    return None


app = typer.Typer(add_completion=False, no_args_is_help=False, rich_markup_mode=None, cls=Group,
                  pretty_exceptions_enable=False, epilog=EXIT_CODES_HELP,
                  help="Continuous vulnerability monitoring for container images: tells you when findings change.")


def find_config(path: Optional[Path]) -> Optional[Path]:
    """--config (or $VULNWATCH_CONFIG), else ./vulnwatch.yaml, else None (embedded defaults)."""
    if path is not None:
        return path
    here = Path("vulnwatch.yaml")
    return here if here.exists() else None


def _log_level(value: str) -> str:
    try:
        return logs.parse_level(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    config: Optional[Path] = config_option(),
    log_format: LogFormat = option("text", "--log-format",
                             help="text, or json: every failure, warning and summary one JSON object per line."),
    log_level: str = option("WARNING", "--log-level", callback=_log_level,
                            help="DEBUG (also each registry and AWS request), INFO, WARNING, ERROR."),
    quiet: bool = quiet_option(),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(f"vulnwatch {__version__}")
        raise typer.Exit(0)
    logs.setup(log_format, log_level)
    ctx.obj = State(config_path=config, log_format=log_format, quiet=quiet)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


def verb_state(ctx: typer.Context, config: Optional[Path] = None, quiet: bool = False) -> State:
    """The invocation's state, with the verb's own ``--config`` / ``--quiet`` (given after the verb)."""
    state: State = ctx.obj if isinstance(ctx.obj, State) else State(None)
    ctx.obj = state

    def typed(name: str) -> bool:
        # from the verb's own command line; $VULNWATCH_CONFIG must not override `-c X` before the verb
        source = ctx.get_parameter_source(name)
        return source is not None and source.name == "COMMANDLINE"

    if config is not None and (typed("config") or state.config_path is None):
        state.config_path = config
    if quiet:
        state.quiet = True
    return state


def load(state: State, sections: Collection[str] | None = None) -> Config:
    """The config for this invocation; exits 2 with every problem on a bad config.

    ``sections`` are the top-level sections the verb uses (None: all, as ``run`` and
    ``check-config``): problems elsewhere, such as a ``${SLACK_URL}`` that is not set, do not stop
    a verb that only reads the state."""
    from ..config import ConfigError

    try:
        return load_or_raise(state, sections)
    except ConfigError as e:
        config_error(state, e)


def load_or_raise(state: State, sections: Collection[str] | None = None) -> Config:
    """As :func:`load`, raising :class:`~vulnwatch.config.ConfigError` instead of exiting."""
    if state.config is not None and (state.sections is None or (sections is not None
                                                                and set(sections) <= set(state.sections))):
        return state.config
    from ..config import Config, load_config

    path = find_config(state.config_path)
    # without a file: the embedded demo for the verbs that watch registries; the others (scan, db,
    # status) get plain defaults, so the bundled example data never serves a user's scan
    demo = sections is None or "registries" in sections
    cfg = load_config(path, sections=sections) if path else (Config.default() if demo else Config())
    from ..build import register_config_secrets

    register_config_secrets(cfg)
    for p in cfg.deferred_problems:
        log.info("not checked by this command (section %s is not used): %s", p.section, p,
                 extra={"event": "config_deferred", "file": p.file, "line": p.line, "key": p.key_path})
    state.config, state.sections = cfg, (None if sections is None else tuple(sections))
    return cfg


def config_error(state: State, error: ConfigError) -> NoReturn:
    """Report every problem of ``error`` (one JSON object each with JSON logs) and exit 2."""
    problems = error.problems or ()
    if state.json_logs and problems:
        for p in problems:
            report(state, "error", "config_error", str(p), file=p.file, line=p.line, key=p.key_path,
                   problem=p.message)
    else:
        report(state, "error", "config_error", f"config error\n{error}")
    raise typer.Exit(EXIT_CONFIG)


def fail(state: State | None, code: int, event: str, text: str, **fields: Any) -> NoReturn:
    """Report an error and exit with ``code``."""
    report(state, "error", event, text, **fields)
    raise typer.Exit(code)


__all__ = ["app", "load", "load_or_raise", "find_config", "fail", "option", "config_option", "quiet_option", "verb_state", "exit_codes",
           "TableOrJson", "EXIT_OK", "EXIT_FAILURES", "EXIT_CONFIG", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_BUSY",
           "EXIT_INCOMPLETE"]
