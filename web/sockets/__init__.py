"""The web node's Socket.IO side: connection and `start_session` handlers (`handlers`),
the events of the protocol with their payload schemas (`events`), and the node's half of
acknowledged delivery (`delivery_listener`), read in order with the streamed tokens
(`message_queue`)."""
