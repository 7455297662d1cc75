"""Asterisk provisioning: find or build it, render its configuration, run it."""
