"""The supervisor's side of the contact center: live queues and agents, alerts, listening
in on calls and taking over chats."""
