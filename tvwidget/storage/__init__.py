"""Storage: the models, database helpers, the audit log and encrypted secrets."""
