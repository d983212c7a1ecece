"""Command line: parse, call one stage, turn a :class:`ReporterError` into exit code 1.

Heavy imports live inside the commands so that ``reporter --help`` answers at once.
Exit codes: 0 done, 1 bad input or a failed render, 2 usage.
"""

from __future__ import annotations

import logging
import sys
from datetime import date, datetime, timezone
from functools import wraps
from typing import Any, Callable

import click

log = logging.getLogger("reporter")


def _system_clock() -> datetime:
    # The one place that reads the real time; everything below gets the clock passed in.
    return datetime.now(timezone.utc)


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        return f"{stamp} {record.levelname.lower():7} {record.getMessage()}"


class _JSONFormat(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        import json  # noqa: PLC0415

        fields = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
                  "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        fields.update(getattr(record, "fields", {}))
        return json.dumps(fields, ensure_ascii=False, default=str)


def _configure_logging(verbose: bool, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JSONFormat() if as_json else _Format())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("reporter").setLevel(logging.DEBUG if verbose else logging.INFO)
    # WeasyPrint and fontTools chatter is ours to judge (render.py collects WeasyPrint's records).
    for noisy in ("fontTools", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _handles_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Print a user's mistake as one line per problem and exit 1; ``--debug`` re-raises."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import ReporterError  # noqa: PLC0415

        ctx = click.get_current_context()
        try:
            return command(*args, **kwargs)
        except ReporterError as exc:
            if ctx.obj.get("debug"):
                raise
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            sys.exit(1)

    return wrapper


def _csv_option(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", metavar="PATH", envvar="REPORTER_CONFIG",
              help="Project config (default: ./reports.toml, or $REPORTER_CONFIG).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--verbose", "-v", is_flag=True, help="More detail on stderr.")
@click.option("--log-json", is_flag=True, help="Log JSON lines on stderr.")
@click.version_option(package_name="reporter")
@click.pass_context
def main(ctx: click.Context, config_file: str | None, debug: bool, verbose: bool, log_json: bool) -> None:
    """Render, schedule and deliver briefings from fact datasets."""
    ctx.ensure_object(dict)
    ctx.obj.update(config=config_file, debug=debug, clock=_system_clock)
    _configure_logging(verbose, log_json)


def _project(ctx: click.Context):
    from . import config  # noqa: PLC0415

    return config.load(ctx.obj["config"])


@main.command()
@click.argument("report_id", metavar="REPORT")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Edition date (default: today in the report's time zone).")
@click.option("--lang", help="Languages, comma-separated (default: all of the report's).")
@click.option("--format", "formats", help="Formats, comma-separated: pdf,html (default: the report's).")
@click.option("--output", type=click.Path(file_okay=False), help="Output folder (default: the config's).")
@click.pass_context
@_handles_errors
def render(ctx: click.Context, report_id: str, day: datetime | None, lang: str | None,
           formats: str | None, output: str | None) -> None:
    """Render one edition of REPORT and print the paths written."""
    from pathlib import Path  # noqa: PLC0415

    from .build import build_edition, edition_date  # noqa: PLC0415

    project = _project(ctx)
    report = project.report(report_id)
    edition = build_edition(
        project, report, day.date() if day else edition_date(report, ctx.obj["clock"]),
        languages=_csv_option(lang), formats=_csv_option(formats),
        output_dir=Path(output).resolve() if output else None,
    )
    for artifact in edition.artifacts:
        click.echo(str(artifact.path))


@main.command("list")
@click.pass_context
@_handles_errors
def list_reports(ctx: click.Context) -> None:
    """List the reports: languages, formats, time zone and schedule."""
    project = _project(ctx)
    for report in project.reports.values():
        click.echo(f"{report.id}  {report.title.get('en') or next(iter(report.title.values()))}")
        click.echo(f"  languages: {', '.join(report.languages)}   formats: {', '.join(report.formats)}")
        click.echo(f"  schedule:  {report.schedule or '(none)'}   time zone: {report.timezone.key}")


@main.command()
@click.pass_context
@_handles_errors
def validate(ctx: click.Context) -> None:
    """Check config, datasets, templates and catalogues; list every problem."""
    from .validate import validate_project  # noqa: PLC0415

    project = _project(ctx)
    validate_project(project)
    click.echo(f"ok: {len(project.reports)} report(s) in {project.path}")
