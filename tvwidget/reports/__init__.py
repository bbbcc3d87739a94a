"""The sessions report: its summary and the roll-up tables that keep it fast."""
