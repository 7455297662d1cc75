"""Contacts: one customer request on one channel, its state machine and its event log."""
