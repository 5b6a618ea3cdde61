"""Test-wide setup: pytest puts this folder on ``sys.path`` (it holds a
conftest.py and no ``__init__.py``), so every test module can import the
shared helpers beside it (``tool_loader``)."""
