"""Trainbench's desktop app: Qt views and controllers over the headless `engine`.

Nothing here decides what a model, a shape or a run is; that is the engine's job. The app shows
engine objects, turns user gestures into edits (each one a `QUndoCommand`) and runs long work off
the UI thread. Start-up must not import torch: the window has to appear in well under a second.
"""

APP_NAME = "Trainbench"
ORG_NAME = "Trainbench"
