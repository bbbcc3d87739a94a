"""The host contract: launch tokens and the host's tickets, and the signed webhook to the host."""
