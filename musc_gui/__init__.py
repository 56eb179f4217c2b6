"""MuSc Inspector desktop application (PySide6 + pyqtgraph); the engine runs in a QThread."""
