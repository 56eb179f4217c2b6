"""Views of the current part: ``image_view.ImageView`` (2D) and ``cloud_view.CloudView`` (3D).

Both draw what ``AppState.decision`` says (the pixel cut, the defect regions) and compute no
threshold. Pure rules live beside them (``heatmap``, ``cloud_colors``), the OpenGL side of the
3D view in ``cloud_gl`` and the up-front OpenGL check in ``gl_check``. Import the modules
directly; ``cloud_view`` pulls in OpenGL.
"""
