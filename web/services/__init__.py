"""Business logic of the web node; route handlers call one function here."""
