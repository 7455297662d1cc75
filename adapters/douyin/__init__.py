"""Douyin Open Platform: the signed webhook (private messages) in, the send-message API out."""
