"""Session fixtures for the export tests."""
