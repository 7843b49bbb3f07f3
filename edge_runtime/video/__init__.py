"""Video I/O, on the device: frame sources (cameras, files, folders, the demo scene), sinks (files, window,
HTTP preview), the grabber thread, the live camera loop and its statistics, and enhancing picture and video
files."""
