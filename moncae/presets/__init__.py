"""Settings presets (package data): smoke, quick, paper; `moncae search --preset NAME`."""
