"""Email delivery: messages (compose), transport (smtp), and the stage that keeps the ledger (delivery)."""
