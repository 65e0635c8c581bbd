"""What the tests share: fakes of sources, devices and models, tiny data writers, and the
fixtures in :mod:`tests.support.plugin` (loaded for every test by ``tests/conftest.py``)."""
