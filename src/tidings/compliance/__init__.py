"""Compliance: consent ledger, data-subject rights, content review."""
