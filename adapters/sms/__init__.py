"""SMS through a generic HTTP gateway: signed inbound webhooks, outbound by template."""
