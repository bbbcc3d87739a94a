"""TeamViewer: the Web API client and its errors, the connected account and the user directory."""
