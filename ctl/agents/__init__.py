"""Agents: people who take contacts, and their SIP endpoints."""
