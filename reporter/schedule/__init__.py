"""Scheduling: which slots are due (plan), the service that runs them, one scheduler per state (lock)."""
