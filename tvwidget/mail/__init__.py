"""The invitation email: the message, its placeholders, and the outbox that delivers it."""
