"""Web chat: an embeddable widget over a websocket, resumable by sequence numbers."""
