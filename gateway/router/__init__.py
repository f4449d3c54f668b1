"""Routing decisions: pure functions of what the store knows, which the store then persists.

Where an inbound event belongs and who else gets it: `conversations` (which group
conversation, who gets a copy), `relay` (how a copy reads), `identities` (which user a sender
joins), `numbered_answers` (a typed "2" as the postback it picks), `forms` (what an answer to
an open form does) and `statuses` (which of our messages a delivery report names, and whether
it moves it on). The store reads the facts first, asks, and writes the answer in the inbound
transaction; nothing here does I/O.
"""
