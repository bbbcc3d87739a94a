"""The case rules: play, stop, replace, expiry, the close guard, live status, connections and reconcile."""
