"""Acknowledged delivery of finished assistant messages (`mojo_message`, and
`draft_message` for drafts).

The state lives in PostgreSQL (md_message.acknowledged_at, delivery_attempts,
last_delivery_at), never only in a process's memory. Delivering means publishing a
delivery request on a Redis channel that every web node listens to (`publishing`); each
node emits the message to *its own* sockets in the session's room with an ack callback
(web/sockets/delivery_listener.py), because only the node that holds a socket receives
that socket's ack, and stores the matching acks (`acks`). A resend sweep, a Celery task
that reschedules itself with a countdown, resends what is due until an ack is stored
(worker/delivery_sweep.py). `protocol` says what goes on the wire; `emitter` sends the
unacknowledged events (tokens, notices) to a session's room from any process.
"""
