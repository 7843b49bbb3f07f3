"""The device side of a deployment: :mod:`.device_agent`, one standard-library file that ``deploy`` sends to
the device and runs with the device's own Python (it imports nothing of this project)."""
