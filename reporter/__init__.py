"""reporter: scheduled briefings from curated fact datasets, as dated PDF and HTML editions."""

__version__ = "0.2.0"
