"""Quick replies and the knowledge base the agent desktop offers (issue #8)."""
