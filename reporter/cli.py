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
    ctx.obj.update(config=config_file, debug=debug, log_json=log_json, clock=_clock_from_environment())
    from .log import configure_logging  # noqa: PLC0415

    configure_logging(verbose, log_json)


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
    from .state.history import check_writable  # noqa: PLC0415

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
@click.pass_context
@_handles_errors
def render(ctx: click.Context, report_id: str, day: datetime | None, lang: str | None,
           formats: str | None, output: str | None, send_after: bool = False) -> None:
    """Render one edition of REPORT and print the paths written."""
    from pathlib import Path  # noqa: PLC0415

    from .config import edition_date  # noqa: PLC0415
    from .errors import ReporterError  # noqa: PLC0415
    from .state.recording import RunRecorder  # noqa: PLC0415

    clock = ctx.obj["clock"]
    project = _project(ctx)
    report = project.report(report_id)
    when = day.date() if day else edition_date(report, clock)
    recorder = RunRecorder(_state(project), report.id, when, "manual", clock())
    from .pipeline.build import build_edition  # noqa: PLC0415 - after the fork, so the helper stays small

    try:
        edition = build_edition(
            project, report, when, languages=_csv_option(lang), formats=_csv_option(formats),
            output_dir=Path(output).resolve() if output else None, before_write=recorder.wait_started,
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
    if send_after:
        _deliver(ctx, project, report, when, _history(project))


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


def _service(ctx: click.Context, project, history, workers: int | None):
    from .execute.pool import ProcessPool  # noqa: PLC0415
    from .schedule.service import Service  # noqa: PLC0415

    pool = ProcessPool(size=workers or project.workers, max_tasks=project.max_tasks_per_worker,
                       log_json=ctx.obj["log_json"])
    return Service(project, history, pool, ctx.obj["clock"], delivery=_delivery(ctx, project, history))


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
@click.pass_context
@_handles_errors
def run(ctx: click.Context, workers: int | None, stop_timeout: float, standby_interval: float) -> None:
    """Run the scheduler: render each report when due, until stopped.

    With a PostgreSQL state (REPORTER_STATE_URL) it may run on several hosts: one leads, the
    others stand by and one takes over when the leader dies.
    """
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from .schedule.service import serve  # noqa: PLC0415

    project = _project(ctx)
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        # While standing by; once leading, serve() installs its own handlers on this event.
        if not stopping.is_set():
            log.info("received %s: stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with _scheduler_state(ctx, project, standby=standby_interval, stopping=stopping) as history:
        if history is None:
            log.info("stopped", extra={"fields": {"event": "stopped"}})
            return
        log.info("scheduler started for %s (%d report(s)), history in %s", project.path,
                 len([r for r in project.reports.values() if r.schedule]), history.location)
        service = _service(ctx, project, history, workers)
        # Between slots too: a mail server that comes back gets what waited, within retry_for.
        service.start_retrying(project.email.retry_every)
        with _leading(history, service):
            serve(service, stop_grace=stop_timeout, system_clock=_system_clock, stopping=stopping)


@main.command("run-due")
@click.option("--workers", type=click.IntRange(1, 64), help="Render processes (default: one per core).")
@click.pass_context
@_handles_errors
def run_due(ctx: click.Context, workers: int | None) -> None:
    """Render what fell due since the last run, then exit (for cron or a systemd timer)."""
    project = _project(ctx)
    with _scheduler_state(ctx, project) as history:
        if history is None:
            return  # another scheduler leads this PostgreSQL state: it runs what is due
        service = _service(ctx, project, history, workers)
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


@contextmanager
def _scheduler_state(ctx: click.Context, project, *, standby: float | None = None,
                     stopping: Any = None) -> Iterator[Any]:
    """The history, held by this process alone as the scheduler (``run`` or ``run-due``).

    With SQLite, that is an exclusive ``flock`` beside the file; a second scheduler is refused.
    With PostgreSQL, it is the leader lock: ``run`` (``standby`` seconds between attempts) stands
    by until it leads, or until ``stopping`` is set; ``run-due`` tries once. Either yields None
    when it does not lead.

    While leading, runs left ``running`` by a process that died are recorded as abandoned, and
    the temporary files they left are removed.
    """
    from .schedule.lock import SchedulerLock  # noqa: PLC0415
    from .state.history import check_writable  # noqa: PLC0415

    target = _state(project)
    if not target.postgres:
        check_writable(target.path)  # before the lock, whose file lives in the same folder
        with SchedulerLock(target.path):
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
        warnings = validate_project(project)
    except ReporterError as exc:
        problems += exc.problems
    problems += header_problems(project)  # every email header, rendered as it will be sent
    if problems:
        raise ReporterError(problems)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"ok: {len(project.reports)} report(s) in {project.path}")


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
def adopt(ctx: click.Context) -> None:
    """Rebuild a lost history from the editions in output/ and their delivery records.

    Records each edition the history does not know as a successful run, and each delivery its
    deliveries.json lists as sent, so that nothing is rendered or mailed a second time.
    """
    from .schedule.lock import SchedulerLock  # noqa: PLC0415
    from .state.adopt import adopt as adopt_editions  # noqa: PLC0415
    from .state.history import check_writable  # noqa: PLC0415

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
