"""The history's tables as the reporter before schema versions made them (main at the edges and
cron work), copied verbatim: upgrade tests create a database with these, then open it with today's.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

slots = sa.Table(
    "slots", metadata,
    sa.Column("report", sa.String, primary_key=True),
    sa.Column("slot", sa.String, primary_key=True,
              doc="scheduled time as wall-clock time in the report's zone, e.g. 2025-11-03T08:00;"
                  " a time that occurs twice at a DST fall-back is one slot"),
    sa.Column("edition_date", sa.String, nullable=False),
    sa.Column("state", sa.String, nullable=False, doc="running | ok | failed | skipped | abandoned"),
    sa.Column("run_id", sa.Integer),
)
runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("report", sa.String, nullable=False, index=True),
    sa.Column("edition_date", sa.String, nullable=False),
    sa.Column("slot", sa.String, doc="the slot (see slots.slot), or NULL for a manual render"),
    sa.Column("trigger", sa.String, nullable=False, doc="manual | schedule | catch-up | run-due"),
    sa.Column("started_at", sa.String, nullable=False),
    sa.Column("finished_at", sa.String),
    sa.Column("status", sa.String, nullable=False, doc="running | ok | failed | skipped | abandoned"),
    sa.Column("error", sa.Text),
    sa.Column("owner", sa.String, nullable=False, doc="host:pid of the process that ran it"),
)
cursors = sa.Table(
    "cursors", metadata,
    sa.Column("report", sa.String, primary_key=True),
    sa.Column("until", sa.String, nullable=False, doc="UTC time up to which due slots were decided"),
)
artifacts = sa.Table(
    "artifacts", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("lang", sa.String, nullable=False),
    sa.Column("format", sa.String, nullable=False),
    sa.Column("sha256", sa.String, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
)
deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("report", sa.String, primary_key=True),
    sa.Column("edition_date", sa.String, primary_key=True),
    sa.Column("lang", sa.String, primary_key=True),
    sa.Column("recipient", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False,
              doc="pending (to send) | sending (claimed) | sent | failed (retried while in the window) | rejected (5xx)"
                  " | unchanged (send_if)"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("reply", sa.Text, doc="the server's last reply, e.g. '250 OK' or '550 no such user'"),
    sa.Column("message_id", sa.String),
    sa.Column("sha256", sa.String, doc="sha256 of the attached PDF"),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.Column("forced", sa.Boolean, nullable=False, default=False),
    sa.Column("owner", sa.String, doc="host:pid of the process sending it now (status 'sending')"),
    sa.Column("content", sa.String, doc="digest of what the edition says (data and texts), for send_if"),
)

notices = sa.Table(
    "notices", metadata,
    sa.Column("report", sa.String, primary_key=True),
    sa.Column("kind", sa.String, primary_key=True, doc="render (a scheduled render failed) | delivery (not delivered to everyone)"
              " | expired (still not, when retry_for ran out)"),
    sa.Column("about", sa.String, primary_key=True, doc="the slot (render) or the edition date (delivery)"),
    sa.Column("recipient", sa.String, primary_key=True, doc="an on_failure address"),
    sa.Column("edition_date", sa.String, nullable=False),
    sa.Column("lang", sa.String, nullable=False),
    sa.Column("error", sa.Text, nullable=False, doc="what failed, as the notice tells it"),
    sa.Column("status", sa.String, nullable=False, doc="pending | sending | sent | failed | resolved"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("reply", sa.Text),
    sa.Column("message_id", sa.String),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("updated_at", sa.String, nullable=False),
    sa.Column("owner", sa.String),
)
