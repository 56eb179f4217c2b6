"""Whether OpenGL can draw the 3D view here, asked once before any GL widget exists.

A GL widget on a machine without usable OpenGL (a VM without 3D acceleration, a remote desktop
with OpenGL 1.1, Qt's offscreen platform with a display set) does not fail cleanly: every paint
raises inside pyqtgraph and the errors cascade through the rest of the window. So the 3D view
asks :func:`opengl_problem` first and shows a plain message instead of a GL widget. Errors that
only show on the first paint are caught by the view itself (``cloud_view.PickingGLView``).
"""

from __future__ import annotations

from functools import cache

from PySide6.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext

NO_GL_PLATFORMS = ("offscreen", "minimal", "vnc", "linuxfb")  # Qt platforms that draw no GL
MIN_VERSION = (2, 1)  # what pyqtgraph.opengl needs (GLViewWidget.initializeGL)


@cache
def opengl_problem() -> str | None:
    """Why the 3D view cannot use OpenGL in this process, or None when it can.

    Needs a running QGuiApplication; the answer does not change while the process runs, so
    it is computed once.
    """
    if QGuiApplication.instance() is None:
        return "no Qt application is running yet"
    platform = QGuiApplication.platformName()
    if platform in NO_GL_PLATFORMS:
        return (f"the Qt platform is '{platform}', which has no screen to draw OpenGL on "
                "(set QT_QPA_PLATFORM to xcb, wayland, windows or cocoa)")  # fmt: skip
    context = QOpenGLContext()
    if not context.create():
        return "no OpenGL context could be created (no OpenGL driver for this display)"
    surface = QOffscreenSurface()
    surface.setFormat(context.format())
    surface.create()
    try:
        if not surface.isValid() or not context.makeCurrent(surface):
            return "an OpenGL context exists but cannot be made current on this display"
        version = context.format().version()
        if not context.isOpenGLES() and tuple(version) < MIN_VERSION:
            found = ".".join(str(v) for v in version)
            return (f"OpenGL {found} found; the 3D view needs OpenGL 2.1 or later (remote "
                    "desktops and VMs without 3D acceleration often offer only 1.1)")  # fmt: skip
        context.doneCurrent()
    finally:
        surface.destroy()
    return None


def unavailable_text(problem: str) -> str:
    """The message the 3D tab shows instead of the point cloud."""
    return (f"3D view unavailable: {problem}.\n\nEverything else (the 2D view, the ranked "
            "list, metrics and export) works as usual.")  # fmt: skip
