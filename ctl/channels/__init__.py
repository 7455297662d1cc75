"""Digital channels: one contract for every adapter (inbound, outbound, delivery status)."""
