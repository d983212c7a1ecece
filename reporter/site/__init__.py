"""The archive site of a project's output (``output/index.html``) and the live preview."""
