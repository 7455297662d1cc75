"""Telephony: ARI and AMI clients and the per-call session."""
