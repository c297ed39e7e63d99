"""A terminal client of System1 (`python -m client`): log in, pick or start a chat or a
task, and watch answers and drafts stream in, live, with rich.

It speaks the Mojodex client protocol like any other client: REST with `requests`,
Socket.IO with `python-socketio`, acknowledging every `mojo_message` and
`draft_message` by returning `{session_id, message_pk}` or
`{session_id, produced_text_version_pk}` from its handler.
"""
