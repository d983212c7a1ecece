"""Command line: parse, call one stage, turn a :class:`ReporterError` into exit code 1.

Heavy imports live inside the commands so that ``reporter --help`` answers at once.
Exit codes: 0 done, 1 bad input or a failed render, 2 usage.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timedelta, timezone
from contextlib import contextmanager
from functools import wraps
from typing import Any, Callable, Iterator

import click

log = logging.getLogger("reporter")


def _system_clock() -> datetime:
    # The one place that reads the real time; everything below gets the clock passed in.
    return datetime.now(timezone.utc)


def _clock_from_environment():
    """The clock, or, with ``REPORTER_NOW`` set (tests, replays), one that starts at that instant.

    The shifted clock keeps running in real time, so a process started at "Monday 08:00:30"
    behaves as it would have then: what is due, which edition date, what runs next.
    """
    import os  # noqa: PLC0415
    import time  # noqa: PLC0415

    start = os.environ.get("REPORTER_NOW")
    if not start:
        return _system_clock
    try:
        origin = datetime.fromisoformat(start)
    except ValueError:
        raise click.UsageError(f"REPORTER_NOW={start!r} is not an ISO date-time") from None
    if origin.tzinfo is None:
        raise click.UsageError("REPORTER_NOW needs a UTC offset, e.g. 2025-11-03T08:00:30+05:00")
    began = time.monotonic()
    return lambda: (origin + timedelta(seconds=time.monotonic() - began)).astimezone(timezone.utc)


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
            _report(ctx, exc)
        except Exception:
            if ctx.obj.get("log_file"):  # a bug: its traceback still goes to stderr, and to the file
                log.exception("unexpected error in `reporter %s`", ctx.info_name)
            raise

    return wrapper


def _csv_option(value: str | None) -> tuple[str, ...] | None:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else None


def _versions(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``-V``: reporter's version and those of what draws its pages, for a bug report or a deploy check.

    WeasyPrint is imported here only, so ``--help`` stays fast.
    """
    if not value or ctx.resilient_parsing:
        return
    import platform  # noqa: PLC0415

    from . import __version__  # noqa: PLC0415

    click.echo(f"reporter {__version__}")
    failed = False
    try:
        from .pipeline.libraries import import_weasyprint  # noqa: PLC0415

        weasyprint = import_weasyprint()
        from weasyprint.text.ffi import pango  # noqa: PLC0415

        number = pango.pango_version()  # major * 10000 + minor * 100 + micro
        click.echo(f"WeasyPrint {weasyprint.__version__}")
        click.echo(f"Pango {number // 10000}.{number // 100 % 100}.{number % 100}")
    except (ImportError, OSError) as exc:  # a missing Pango library is an OSError from cffi
        click.echo(f"WeasyPrint: cannot be loaded: {exc}")
        failed = True
    click.echo(f"Python {platform.python_version()} ({sys.executable})")
    ctx.exit(1 if failed else 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", metavar="PATH", envvar="REPORTER_CONFIG",
              help="Project config (default: ./reports.toml, or $REPORTER_CONFIG).")
@click.option("--env-file", metavar="PATH", envvar="REPORTER_ENV_FILE",
              help="Read KEY=VALUE lines (the SMTP secrets) into the environment first; "
                   "the file must be yours (or root's) with mode 0600.")
@click.option("--log-file", metavar="PATH", envvar="REPORTER_LOG_FILE",
              help="Append the log to PATH (its folder is created) instead of stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--verbose", "-v", is_flag=True, help="More detail in the log.")
@click.option("--log-json", is_flag=True, help="Log JSON lines.")
@click.option("-V", "--version", is_flag=True, expose_value=False, is_eager=True, callback=_versions,
              help="Show the versions of reporter, WeasyPrint, Pango and Python, then exit.")
@click.pass_context
def main(ctx: click.Context, config_file: str | None, env_file: str | None, log_file: str | None, debug: bool,
         verbose: bool, log_json: bool) -> None:
    """Render, schedule and deliver briefings from fact datasets."""
    import os  # noqa: PLC0415

    from .errors import ReporterError  # noqa: PLC0415
    from .log import LOG_FILE_VARIABLE, configure_logging  # noqa: PLC0415

    ctx.ensure_object(dict)
    ctx.obj.update(config=config_file, debug=debug, log_json=log_json, log_file=None)
    try:
        configure_logging(verbose, log_json, log_file)
        if log_file:  # render workers are processes of their own: they find the file here
            os.environ[LOG_FILE_VARIABLE] = os.path.abspath(log_file)
            ctx.obj["log_file"] = log_file
        if env_file:
            from .envfile import load  # noqa: PLC0415

            names = load(env_file)
            log.debug("read %s from %s", ", ".join(names) or "nothing", env_file)
    except ReporterError as exc:
        if debug:
            raise
        _report(ctx, exc)
    ctx.obj["clock"] = _clock_from_environment()


def _report(ctx: click.Context, exc) -> None:
    """One line per problem on stderr, for whoever ran it (cron mails it), and in the log file if
    there is one, where a scheduled run's reader looks."""
    for problem in exc.problems:
        click.echo(f"error: {problem}", err=True)
        if ctx.obj.get("log_file"):
            log.error("%s", problem)
    sys.exit(1)


def _project(ctx: click.Context):
    from . import config  # noqa: PLC0415

    return config.load(ctx.obj["config"])


def _state(project):
    """Where the history is: ``[project] state``, unless ``REPORTER_STATE_URL`` names another."""
    from .state.target import state_target  # noqa: PLC0415

    return state_target(project.state_path)


def _history(project):
    from .state.history import History  # noqa: PLC0415

    return History.open(_state(project))


def _checked_history(project, *, locked: bool = False):
    """The history for a command that writes it or sends mail, checked first, so that it fails at
    once with one clear line rather than later, half-way: a state folder or file that cannot be
    written (read-only, immutable), a damaged page anywhere in the file (``PRAGMA quick_check``),
    a database that cannot be reached, or a history that lost what the editions on disk show was
    done (``reporter adopt``)."""
    from .state.adopt import check_not_lost  # noqa: PLC0415
    from .state.target import check_writable  # noqa: PLC0415

    target = _state(project)
    if not locked and not target.postgres:
        check_writable(target.path)
    history = _history(project)
    for line in history.upgraded:
        log.info("%s: %s", history.location, line)
    history.check()
    check_not_lost(project, history)
    return history


@main.command()
@click.argument("report_id", metavar="REPORT")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Edition date (default: today in the report's time zone).")
@click.option("--lang", help="Languages, comma-separated (default: all of the report's).")
@click.option("--format", "formats", help="Formats, comma-separated: pdf,html (default: the report's).")
@click.option("--output", type=click.Path(file_okay=False), help="Output folder (default: the config's).")
@click.option("--send", "send_after", is_flag=True, help="Then email it to the report's recipients (as `reporter send`).")
@click.option("--force", is_flag=True, help="Render even if nothing changed since the edition on disk was made.")
@click.pass_context
@_handles_errors
def render(ctx: click.Context, report_id: str, day: datetime | None, lang: str | None,
           formats: str | None, output: str | None, send_after: bool = False, force: bool = False) -> None:
    """Render one edition of REPORT and print the paths written."""
    from pathlib import Path  # noqa: PLC0415

    from .config import edition_date  # noqa: PLC0415
    from .errors import ReporterError  # noqa: PLC0415

    clock = ctx.obj["clock"]
    project = _project(ctx)
    report = project.report(report_id)
    if send_after:
        _check_can_send(project, report)
    when = day.date() if day else edition_date(report, clock)
    languages, chosen = _csv_option(lang) or report.languages, _csv_option(formats) or report.formats
    target = Path(output).resolve() if output else project.output_dir
    if not force:
        from .pipeline import manifest  # noqa: PLC0415 - light: no WeasyPrint, no matplotlib, no history

        inputs = manifest.inputs(project, report)
        directory = target / report.id / when.isoformat()
        names = [f"{report.id}.{code}.{fmt}" for code in languages for fmt in chosen if code in report.languages]
        if len(names) == len(languages) * len(chosen) and set(chosen) <= set(report.formats) \
                and manifest.unchanged(directory, inputs, names):
            log.info("%s %s: nothing changed since the edition on disk was made (same inputs); "
                     "not rendered again (--force renders anyway)", report.id, when)
            for name in names:
                click.echo(str(directory / name))
            if send_after:
                _deliver(ctx, project, report, when, _history(project))
            return
    from .site.rebuild import SiteRebuild  # noqa: PLC0415
    from .state.recording import RunRecorder  # noqa: PLC0415

    recorder = RunRecorder(_state(project), report.id, when, "manual", clock())
    # The archive lists the project's output folder; an edition written elsewhere is not in it.
    in_archive = output is None or Path(output).resolve() == project.output_dir
    rebuild = SiteRebuild(project) if in_archive else None
    from .pipeline.build import build_edition  # noqa: PLC0415 - after the forks, so the helpers stay small

    try:
        try:
            edition = build_edition(
                project, report, when, languages=_csv_option(lang), formats=_csv_option(formats),
                output_dir=Path(output).resolve() if output else None, before_write=recorder.wait_started,
                force=force,
            )
        except ReporterError as exc:
            recorder.finish("failed", clock(), error=str(exc))
            raise
        except BaseException as exc:
            recorder.finish("abandoned" if isinstance(exc, KeyboardInterrupt) else "failed", clock(), error=repr(exc))
            raise
        recorder.finish("ok", clock(), files=edition.artifacts)
        for artifact in edition.artifacts:
            click.echo(str(artifact.path))
        try:
            if send_after:
                _deliver(ctx, project, report, when, _history(project))
        finally:
            if rebuild:
                _site_warnings(rebuild.build())
    finally:
        if rebuild:
            rebuild.cancel()  # after a failed render: the helper exits without building


@main.command("list")
@click.option("--next", "count", type=click.IntRange(0, 100), default=3, show_default=True,
              help="How many next run times to show per report.")
@click.pass_context
@_handles_errors
def list_reports(ctx: click.Context, count: int) -> None:
    """List the reports: languages, formats, schedule and next runs in each report's zone."""
    project = _project(ctx)
    for report in project.reports.values():
        click.echo(f"{report.id}  {report.title.get('en') or next(iter(report.title.values()))}")
        click.echo(f"  languages: {', '.join(report.languages)}   formats: {', '.join(report.formats)}")
        click.echo(f"  schedule:  {report.schedule or '(none)'}   time zone: {report.timezone.key}"
                   f"   catch-up: {report.catch_up}")
        if report.schedule and count:
            from .schedule.plan import next_runs  # noqa: PLC0415

            for moment in next_runs(report, ctx.obj["clock"](), count):
                click.echo(f"  next:      {moment.strftime('%a %Y-%m-%d %H:%M %Z (UTC%z)')}")


def _service(ctx: click.Context, project, history, workers: int | None, executor: str | None = None):
    from .schedule.service import Service  # noqa: PLC0415

    if (executor or project.executor) == "celery":
        from .execute.broker import broker_url  # noqa: PLC0415
        from .execute.celery import CeleryExecutor  # noqa: PLC0415

        runner = CeleryExecutor(project, broker_url(), ctx.obj["clock"])
    else:
        from .execute.pool import ProcessPool  # noqa: PLC0415

        runner = ProcessPool(size=workers or project.workers, max_tasks=project.max_tasks_per_worker,
                             log_json=ctx.obj["log_json"])
    return Service(project, history, runner, ctx.obj["clock"], delivery=_delivery(ctx, project, history),
                   after_run=lambda _report, _day, _status: _rebuild_site(project, history))


def _rebuild_site(project, history) -> None:
    """Rebuild the archive site after a scheduled run."""
    from .errors import ReporterError  # noqa: PLC0415
    from .site.archive import build_site  # noqa: PLC0415

    try:
        build_site(project, history)
    except ReporterError as exc:
        _site_warnings(exc.problems)


def _site_warnings(problems) -> None:
    # The site comes second: the edition, already written and recorded, stands.
    for problem in problems:
        log.warning("the archive site was not rebuilt: %s", problem)


def _check_broker(project, executor: str | None) -> None:
    """With the Celery executor, a broker that does not answer stops the scheduler before it claims
    any slot: one line, exit 1, and the slots stay due for the next run. No Celery import."""
    if (executor or project.executor) == "celery":
        from .execute.broker import broker_url, check_broker  # noqa: PLC0415

        check_broker(broker_url())


_EXECUTOR = click.option("--executor", type=click.Choice(["local", "celery"]),
                         help="Where renders run: local processes, or Celery workers through REPORTER_BROKER_URL "
                              "(default: executor in [project], else local).")


def _delivery(ctx: click.Context, project, history):
    """What scheduled runs do about email: deliver each edition, retry, tell ``on_failure``."""
    from .deliver.scheduled import ScheduledDelivery  # noqa: PLC0415

    return ScheduledDelivery(project, history, now=ctx.obj["clock"])


@main.command()
@click.option("--workers", type=click.IntRange(1, 64), help="Render processes (default: one per core).")
@click.option("--stop-timeout", type=float, default=30.0, show_default=True,
              help="Seconds a render in progress may take to finish after SIGTERM/SIGINT.")
@click.option("--standby-interval", type=click.FloatRange(0.1, 3600), default=5.0, show_default=True,
              help="With a PostgreSQL state: seconds between a standby's attempts to lead.")
@_EXECUTOR
@click.pass_context
@_handles_errors
def run(ctx: click.Context, workers: int | None, stop_timeout: float, standby_interval: float,
        executor: str | None = None) -> None:
    """Run the scheduler: render each report when due, until stopped.

    With a PostgreSQL state (REPORTER_STATE_URL) it may run on several hosts: one leads, the
    others stand by and one takes over when the leader dies.
    """
    from .schedule.service import serve  # noqa: PLC0415
    from .schedule.stopping import Stopping  # noqa: PLC0415

    project = _project(ctx)
    _check_broker(project, executor)
    stopping = Stopping()
    stopping.install()  # while standing by too
    with _scheduler_state(ctx, project, standby=standby_interval, stopping=stopping) as history:
        if history is None:
            log.info("%s: stopping", stopping.reason)
            log.info("stopped", extra={"fields": {"event": "stopped"}})
            return
        log.info("scheduler started for %s (%d report(s)), history in %s", project.path,
                 len([r for r in project.reports.values() if r.schedule]), history.location)
        service = _service(ctx, project, history, workers, executor)
        # Between slots too: a mail server that comes back gets what waited, within retry_for.
        service.start_retrying(project.email.retry_every)
        with _leading(history, service):
            serve(service, stop_grace=stop_timeout, system_clock=_system_clock, stopping=stopping)


@main.command("run-due")
@click.option("--workers", type=click.IntRange(1, 64), help="Render processes (default: one per core).")
@_EXECUTOR
@click.pass_context
@_handles_errors
def run_due(ctx: click.Context, workers: int | None, executor: str | None = None) -> None:
    """Render what fell due since the last run, then exit (for cron or a systemd timer)."""
    project = _project(ctx)
    _check_broker(project, executor)
    with _scheduler_state(ctx, project, unless_idle=True) as history:
        if history is None:
            return  # nothing due, or another scheduler leads this PostgreSQL state and runs it
        service = _service(ctx, project, history, workers, executor)
        try:
            with _leading(history, service):
                retried = service.resume_deliveries()
                results = service.due(trigger="run-due")
        finally:
            service.executor.close(grace=0)
            service.close()
    if not results and not retried:
        log.info("nothing due")
    for report_id, day, outcome in retried:
        click.echo(f"{report_id} {day.isoformat()} retry: {outcome.summary}")
    for slot, status in results:
        click.echo(f"{slot.report} {slot.key} {status}")
    if any(status != "ok" for _slot, status in results) or any(not outcome.ok for *_, outcome in retried):
        sys.exit(1)


@main.command()
@click.option("--concurrency", type=click.IntRange(1, 64),
              help="Render processes (default: workers in [project], else one per core).")
@click.option("--node", envvar="REPORTER_NODE", metavar="NAME",
              help="This worker's name in logs and the history (default: $REPORTER_NODE, else the host name).")
@click.pass_context
@_handles_errors
def worker(ctx: click.Context, concurrency: int | None, node: str | None) -> None:
    """Render editions for schedulers with executor = "celery", through REPORTER_BROKER_URL.

    Runs in the foreground until SIGTERM or SIGINT, which let the renders in progress finish.
    """
    import re  # noqa: PLC0415
    import socket  # noqa: PLC0415

    from .execute.broker import broker_url, check_broker  # noqa: PLC0415

    node = node or socket.gethostname()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", node):
        raise click.BadParameter("letters, digits, '.', '_' and '-', at most 63", param_hint="--node / REPORTER_NODE")
    project = _project(ctx)
    url = broker_url()
    check_broker(url)
    from .execute.celery import run_worker  # noqa: PLC0415

    sys.exit(run_worker(project, url, node, concurrency or 0))


@contextmanager
def _scheduler_state(ctx: click.Context, project, *, standby: float | None = None,
                     stopping: Any = None, unless_idle: bool = False) -> Iterator[Any]:
    """The history, held by this process alone as the scheduler (``run`` or ``run-due``).

    With SQLite, that is an exclusive ``flock`` beside the file; a second scheduler is refused.
    With PostgreSQL, it is the leader lock: ``run`` (``standby`` seconds between attempts) stands
    by until it leads, or until ``stopping`` is set; ``run-due`` tries once. Either yields None
    when it does not lead. With ``unless_idle``, it also yields None when a SQLite history shows,
    under the lock and without SQLAlchemy, that nothing is due: the common case of a cron call,
    answered in a tenth of the time.

    While leading, runs left ``running`` by a process that died are recorded as abandoned, and
    the temporary files they left are removed.
    """
    from .schedule.idle import nothing_due  # noqa: PLC0415
    from .schedule.lock import SchedulerLock  # noqa: PLC0415
    from .state.target import check_writable  # noqa: PLC0415

    target = _state(project)
    if not target.postgres:
        check_writable(target.path)  # before the lock, whose file lives in the same folder
        with SchedulerLock(target.path):
            if unless_idle and nothing_due(project, target.path, ctx.obj["clock"]()):
                log.info("nothing due")
                yield None
                return
            history = _checked_history(project, locked=True)
            _sweep(ctx, project, history)
            yield history
        return
    from .schedule.leader import try_lead, wait_to_lead  # noqa: PLC0415

    history = _checked_history(project)
    try:
        if standby is None:
            leads, leader = try_lead(history)
            if not leads:
                log.info("standing by: another scheduler leads this state (leader: %s); it runs what is due, so "
                         "nothing runs here", leader, extra={"fields": {"event": "standby", "leader": leader}})
                yield None
                return
        elif not wait_to_lead(history, standby, stopping):
            yield None
            return
        history.lead()
        log.info("leading: this scheduler (%s) runs the schedule of %s", history.session().owner, history.location,
                 extra={"fields": {"event": "leading", "node": history.session().owner}})
        _sweep(ctx, project, history)
        yield history
    finally:
        history.close()  # ends the session, and with it the lead


def _sweep(ctx: click.Context, project, history) -> None:
    from .pipeline.write import remove_stale_parts  # noqa: PLC0415

    for run_id, report_id, day in history.abandon_running(ctx.obj["clock"]()):
        log.warning("run %d (%s, edition %s) was interrupted: recorded as abandoned", run_id, report_id, day)
        for part in remove_stale_parts(project.output_dir / report_id / day):
            log.info("removed %s, left by the interrupted run", part)


@contextmanager
def _leading(history, service) -> Iterator[None]:
    """With a PostgreSQL state, step down at once (renders killed, exit 1) if the lead is lost."""
    if not history.postgres:
        yield
        return
    from .schedule.leader import stepping_down, watching  # noqa: PLC0415

    with watching(history, stepping_down(history, lambda: service.executor.close(grace=0))):
        yield


@main.command()
@click.argument("report_id", metavar="[REPORT]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--limit", type=click.IntRange(1, 100000), default=20, show_default=True)
@click.pass_context
@_handles_errors
def history(ctx: click.Context, report_id: str | None, as_json: bool, limit: int) -> None:
    """Show recent runs (and deliveries) from the history."""
    import dataclasses  # noqa: PLC0415
    import json  # noqa: PLC0415

    project = _project(ctx)
    if report_id:
        project.report(report_id)
    ledger = _history(project)
    runs = ledger.runs(report_id, limit=limit)
    deliveries = ledger.deliveries(report_id)
    notices = ledger.notices(report_id)
    if as_json:
        click.echo(json.dumps({"runs": [dataclasses.asdict(r) for r in runs],
                               "deliveries": [dataclasses.asdict(d) for d in deliveries],
                               "notices": [dataclasses.asdict(n) for n in notices]}, ensure_ascii=False, indent=2))
        return
    click.echo(f"{'run':>5}  {'report':10} {'edition':10}  {'slot':16}  {'trigger':8}  {'status':9}  {'started (UTC)':19}  files  error")
    for r in runs:
        error = (r.error or "").splitlines()[0][:70] if r.error else ""
        click.echo(f"{r.id:>5}  {r.report:10} {r.edition_date:10}  {r.slot or '-':16}  {r.trigger:8}  {r.status:9}  "
                   f"{r.started_at[:19]:19}  {len(r.artifacts):>5}  {error}")
    if deliveries:
        click.echo("")
        click.echo(f"{'report':10} {'edition':10}  {'lang':4}  {'recipient':32}  {'status':9}  {'tries':>5}  reply")
        for d in deliveries:
            click.echo(f"{d.report:10} {d.edition_date:10}  {d.lang:4}  {d.recipient:32}  {d.status:9}  {d.attempts:>5}  {(d.reply or '')[:100]}")
    if notices:
        click.echo("")
        click.echo(f"{'report':10} {'failure notice':27}  {'to':32}  {'status':9}  {'tries':>5}  reply")
        for n in notices:
            click.echo(f"{n.report:10} {n.kind + ' ' + n.about:27}  {n.recipient:32}  {n.status:9}  {n.attempts:>5}  {(n.reply or '')[:100]}")


@main.command()
@click.pass_context
@_handles_errors
def validate(ctx: click.Context) -> None:
    """Check config, datasets, templates and catalogues; list every problem.

    Also finds what a render would lose silently: charts and tables never placed, sections
    empty in a language, untranslated strings, email headers that could not be sent. Warnings
    (a dataset no report uses, a chart whose numbers cite no source) do not fail it.
    """
    from .deliver.compose import header_problems  # noqa: PLC0415
    from .errors import ReporterError  # noqa: PLC0415
    from .pipeline.validate import validate_project  # noqa: PLC0415

    project = _project(ctx)
    problems, warnings = [], []
    try:
        warnings = validate_project(project, today=ctx.obj["clock"]().date())
    except ReporterError as exc:
        problems += exc.problems
    problems += header_problems(project)  # every email header, rendered as it will be sent
    if problems:
        raise ReporterError(problems)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"ok: {len(project.reports)} report(s) in {project.path}")


@main.command()
@click.argument("path", type=click.Path(path_type=str), default="")
@click.pass_context
@_handles_errors
def verify(ctx: click.Context, path: str) -> None:
    """Check editions against their manifests: every file there, byte for byte as written.

    PATH is one edition's folder, a report's folder or a whole output folder (default: the
    project's output folder). Exits 1 and says what differs if anything does.
    """
    from pathlib import Path  # noqa: PLC0415

    from .errors import ReporterError  # noqa: PLC0415
    from .pipeline.manifest import verify as check  # noqa: PLC0415

    where = Path(path).resolve() if path else _project(ctx).output_dir
    if not path and not where.exists():
        click.echo(f"ok: no editions under {where} yet")
        return
    count, problems = check(where)
    if problems:
        raise ReporterError(problems)
    click.echo(f"ok: {count} edition(s) under {where} match their manifests")


@main.command()
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False))
@_handles_errors
def init(folder: str) -> None:
    """Create a project in DIR: reports.toml, data/, templates/ and a .gitignore."""
    from pathlib import Path  # noqa: PLC0415

    from .scaffold import init as create  # noqa: PLC0415

    for path in create(Path(folder)):
        click.echo(str(path))


@main.command()
@click.argument("report_id", metavar="REPORT")
@click.option("--lang", "languages", default="ru,en", show_default=True,
              help="The report's languages, comma-separated.")
@click.option("--timezone", help="The report's time zone (default: that of the project's other reports, or UTC).")
@click.pass_context
@_handles_errors
def new(ctx: click.Context, report_id: str, languages: str, timezone: str | None) -> None:
    """Add a working report REPORT to this project: data, narratives and its reports.toml table.

    It validates and renders at once; then replace its data and text with yours.
    """
    from .config import config_path  # noqa: PLC0415
    from .scaffold import new_report  # noqa: PLC0415

    for path in new_report(config_path(ctx.obj["config"]).resolve(), report_id, _csv_option(languages) or (), timezone):
        click.echo(str(path))


@main.command("i18n")
@click.pass_context
@_handles_errors
def i18n_command(ctx: click.Context) -> None:
    """Extract your templates' interface strings and update each language's catalogue.

    Writes locale/messages.pot and locale/<lang>/LC_MESSAGES/messages.po in the project, for
    every language of its reports, and says how many strings still need a translation.
    """
    from .pipeline.catalogues import update  # noqa: PLC0415

    for line in update(_project(ctx)):
        click.echo(line)


def _check_can_send(project, report) -> None:
    """What would stop every message, checked before ``render --send`` writes anything: no sender,
    no or bad SMTP settings. A server that fails later still leaves the edition written."""
    from .deliver.smtp import smtp_settings  # noqa: PLC0415
    from .errors import DeliveryError, Problem  # noqa: PLC0415

    if not report.recipients:
        return
    if not project.email.sender:
        raise DeliveryError([Problem(str(project.path), "email.from", "not set: who the briefing is from")])
    smtp_settings()


def _deliver(ctx: click.Context, project, report, when, history, **options: Any) -> None:
    """Deliver and print one line per recipient; exit 1 if anyone did not get it."""
    from .deliver.delivery import deliver  # noqa: PLC0415

    result = deliver(project, report, when, history, now=ctx.obj["clock"], **options)
    width = max((len(o.recipient.email) for o in result.outcomes), default=0)
    for outcome in result.outcomes:
        click.echo(f"{outcome.recipient.email:{width}}  {outcome.recipient.lang}  {outcome.describe()}")
    if not result.ok:
        sys.exit(1)


@main.command()
@click.argument("report_id", metavar="REPORT")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Edition date (default: today in the report's time zone).")
@click.option("--to", "to", multiple=True, metavar="ADDR",
              help="Only this configured recipient (repeatable; default: all of the report's).")
@click.option("--force", is_flag=True, help="Send again to recipients who already got this edition.")
@click.option("--outbox", type=click.Path(file_okay=False), metavar="DIR",
              help="Write each message to DIR as an .eml file instead of sending it.")
@click.pass_context
@_handles_errors
def send(ctx: click.Context, report_id: str, day: datetime | None, to: tuple[str, ...], force: bool,
         outbox: str | None) -> None:
    """Email a rendered edition of REPORT: each recipient once, in their language, PDF attached.

    The SMTP server comes from REPORTER_SMTP_URL (smtp://host:25, smtp+starttls://user@host:587,
    smtps://user@host:465) and REPORTER_SMTP_PASSWORD. Exits 1 if anyone did not get it.
    """
    from pathlib import Path  # noqa: PLC0415

    from .config import edition_date  # noqa: PLC0415

    project = _project(ctx)
    report = project.report(report_id)
    when = day.date() if day else edition_date(report, ctx.obj["clock"])
    _deliver(ctx, project, report, when, _checked_history(project), to=to, force=force,
             outbox=Path(outbox).resolve() if outbox else None)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (stable fields) instead of text.")
@click.pass_context
@_handles_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """Exit 1 if a report needs attention: a failed last run, undelivered mail past its window, an overdue slot.

    For a monitoring check, or cron with MAILTO. A state that cannot be used is an error (exit 1) too.
    """
    import json  # noqa: PLC0415

    from .schedule.health import describe  # noqa: PLC0415
    from .schedule.health import status as health  # noqa: PLC0415

    project = _project(ctx)
    found = health(project, _checked_history(project), ctx.obj["clock"]())
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
    else:
        for report in found["reports"]:
            for line in describe(report):
                click.echo(line)
    if not found["ok"]:
        sys.exit(1)


@main.command()
@click.pass_context
@_handles_errors
def site(ctx: click.Context) -> None:
    """Rebuild the archive site: output/index.html and a page per report, every edition listed.

    Renders and scheduled runs rebuild it themselves; this is for after a change by hand
    (deleted editions, a delivery, a new catalogue). Prints the pages.
    """
    from .site.archive import build_site  # noqa: PLC0415

    project = _project(ctx)
    for path in build_site(project, _history(project)):
        click.echo(str(path))


@main.command()
@click.argument("report_id", metavar="REPORT")
@click.option("--lang", help="Language (default: the report's first).")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Edition date (default: today in the report's time zone).")
@click.option("--pdf", is_flag=True, help="Show the PDF's pages as images instead of the HTML edition.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.pass_context
@_handles_errors
def preview(ctx: click.Context, report_id: str, lang: str | None, day: datetime | None, pdf: bool, port: int) -> None:
    """Serve an edition of REPORT on 127.0.0.1 and reload it as you edit.

    It renders again whenever the config, the report's data, templates or catalogues change, and
    the page reloads itself; a mistake shows on the page (file, line, message) until it is fixed.
    Nothing is written. Ctrl-C stops it.
    """
    from .config import config_path  # noqa: PLC0415
    from .site.preview import Preview, PreviewServer  # noqa: PLC0415

    shown = Preview(config_path(ctx.obj["config"]), report_id, lang, day.date() if day else None, pdf, ctx.obj["clock"])
    try:
        shown.check()
        server = PreviewServer(shown, port)
    except BaseException:
        shown.close()
        raise
    server.serve(ready=lambda: click.echo(f"Previewing {report_id}{' (PDF)' if pdf else ''} at {server.url}  "
                                          "(Ctrl-C to stop)"))


@main.command()
@click.pass_context
@_handles_errors
def adopt(ctx: click.Context) -> None:
    """Rebuild a lost history from the editions in output/ and their delivery records.

    Records each edition the history does not know as a successful run, and each delivery its
    deliveries.json lists as sent, so that nothing is rendered or mailed a second time.
    """
    from .schedule.lock import SchedulerLock  # noqa: PLC0415
    from .state.adopt import adopt as adopt_editions  # noqa: PLC0415
    from .state.target import check_writable  # noqa: PLC0415

    project = _project(ctx)
    target = _state(project)
    if target.postgres:
        from .errors import Problem, StateError  # noqa: PLC0415
        from .schedule.leader import try_lead  # noqa: PLC0415

        history = _history(project)
        try:
            leads, leader = try_lead(history)  # no scheduler may run on a history being rebuilt
            if not leads:
                raise StateError([Problem(history.where, "", f"a scheduler leads this state (leader: {leader}); "
                                          "stop every `reporter run` first")])
            done = adopt_editions(project, history, ctx.obj["clock"]())
        finally:
            history.close()
    else:
        check_writable(target.path)
        with SchedulerLock(target.path):  # no scheduler may run on a history being rebuilt
            history = _history(project)
            history.check()
            done = adopt_editions(project, history, ctx.obj["clock"]())
    click.echo(f"adopted {done.editions} edition(s) and {done.deliveries} delivery record(s) from {project.output_dir}"
               + (f"; {done.skipped} edition(s) were already in the history" if done.skipped else ""))


@main.group()
def deploy() -> None:
    """Print a systemd unit or a crontab line for this installation and project, with real paths.

    Warnings on stderr name what would fail when the given user runs it.
    """


def _deploy_target(ctx: click.Context, user_name: str | None, env_file: str | None):
    from pathlib import Path  # noqa: PLC0415

    from .deploy import Target, default_env_file, executable, user_named  # noqa: PLC0415

    project = _project(ctx)
    user = user_named(user_name)
    env = Path(env_file).absolute() if env_file else default_env_file(user)
    return Target(executable(), project, user, env)


def _print_with_warnings(text: str, found: list[str]) -> None:
    click.echo(text, nl=False)
    for warning in found:
        click.echo(f"warning: {warning}", err=True)


_user_option = click.option("--user", "user_name", metavar="NAME",
                            help="The account that runs reporter (default: the one running this command).")
_env_file_option = click.option("--env-file", "env_file", metavar="PATH",
                                help="The secrets file it reads (default: ~NAME/.config/reporter/smtp.env).")


@deploy.command("systemd")
@_user_option
@_env_file_option
@click.option("--workers", type=click.IntRange(1, 64), help="Render processes (default: one per core).")
@click.option("--stop-timeout", type=click.FloatRange(1, 3600), default=30.0, show_default=True,
              help="Seconds a render in progress may take to finish when the service stops.")
@click.pass_context
@_handles_errors
def deploy_systemd(ctx: click.Context, user_name: str | None, env_file: str | None, workers: int | None,
                   stop_timeout: float) -> None:
    """A systemd unit running `reporter run` as NAME; save it as /etc/systemd/system/reporter.service."""
    from .deploy import systemd_unit, warnings  # noqa: PLC0415

    target = _deploy_target(ctx, user_name, env_file)
    _print_with_warnings(systemd_unit(target, workers=workers, stop_timeout=stop_timeout), warnings(target))


@deploy.command("cron")
@_user_option
@_env_file_option
@click.option("--log-file", "log_file", metavar="PATH",
              help="Where it logs (default: ~NAME/.local/state/reporter/reporter.log).")
@click.option("--workers", type=click.IntRange(1, 64), help="Render processes (default: one per core).")
@click.pass_context
@_handles_errors
def deploy_cron(ctx: click.Context, user_name: str | None, env_file: str | None, log_file: str | None,
                workers: int | None) -> None:
    """A crontab running `reporter run-due` every minute as NAME, with how to install it."""
    from pathlib import Path  # noqa: PLC0415

    from .deploy import crontab, default_log_file, warnings  # noqa: PLC0415

    target = _deploy_target(ctx, user_name, env_file)
    log_path = Path(log_file).absolute() if log_file else default_log_file(target.user)
    _print_with_warnings(crontab(target, log_path, workers=workers), warnings(target, log_path))


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish); see the README."""
    from click.shell_completion import get_completion_class  # noqa: PLC0415

    # The script calls `reporter` back with _REPORTER_COMPLETE set, click's own mechanism.
    complete = get_completion_class(shell)(main, {}, "reporter", "_REPORTER_COMPLETE")
    click.echo(complete.source())
