"""The demo agent's login, printed by `make run-helpdesk` (demo only)."""
USERNAME, PASSWORD = "agent", "tvwidget-demo"
