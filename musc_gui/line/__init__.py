"""Line mode: watch a folder with a recipe and show each part's verdict as it arrives.

``line_job`` is the worker's loop (no Qt), ``line_runner`` runs it on a QThread,
``line_controller`` publishes its events into ``AppState``, ``line_model`` counts (no Qt),
and ``line_panel`` / ``line_widgets`` / ``strip_chart`` are the dock's widgets.
"""
