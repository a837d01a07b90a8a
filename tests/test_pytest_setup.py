"""The suite's own settings: a hung test fails on its own instead of stalling everything after it."""


def test_every_test_has_a_ten_minute_timeout(pytestconfig):
    # pytest-timeout comes with the dev extra; a lock, a subprocess or a browser that never answers
    # then fails its test with a stack dump, and the rest of the suite still runs
    assert pytestconfig.pluginmanager.hasplugin("timeout"), "pip install -e '.[dev]' (pytest-timeout)"
    assert float(pytestconfig.getini("timeout")) == 600
