"""Views of the current sample: ``image_view.ImageView`` (2D) and ``cloud_view.CloudView`` (3D).

Import the modules directly; the 3D one pulls in OpenGL.
"""
