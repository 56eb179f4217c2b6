"""Side panels bound to the AppState: ranked list, parameters, summary, metrics."""
