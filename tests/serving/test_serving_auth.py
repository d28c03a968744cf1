"""API keys: sources, length rule, rotation of a mounted file, header forms."""

from __future__ import annotations

import os

import pytest

from refarch.serving.auth import ApiKeys, AuthConfigError, parse_keys, presented_key

KEY = "0123456789abcdef-key"


def test_keys_from_env_commas_and_lines(monkeypatch):
    monkeypatch.setenv("REFARCH_API_KEYS", f"{KEY}, second-key-0123456789\n# comment\n")
    keys = ApiKeys.from_env()
    assert keys.check(KEY) and keys.check("second-key-0123456789")
    assert not keys.check(KEY[:-1]) and not keys.check("") and not keys.check(None)


def test_no_key_or_short_key_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("REFARCH_API_KEYS", raising=False)
    monkeypatch.delenv("REFARCH_API_KEY_FILE", raising=False)
    with pytest.raises(AuthConfigError, match="no API key configured"):
        ApiKeys.from_env()
    with pytest.raises(AuthConfigError, match="shorter than 16"):
        ApiKeys(["short"])
    with pytest.raises(AuthConfigError, match="No such file"):
        ApiKeys(file=tmp_path / "missing")


def test_mounted_file_rotates_without_restart(tmp_path):
    path = tmp_path / "api-keys"
    path.write_text(KEY + "\n")
    keys = ApiKeys(file=path, reload_seconds=0)
    assert keys.check(KEY)
    path.write_text("rotated-key-0123456789\n")
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))
    assert keys.check("rotated-key-0123456789") and not keys.check(KEY)
    path.unlink()  # an unreadable file keeps the last good keys
    assert keys.check("rotated-key-0123456789")


def test_parse_and_header_forms():
    assert parse_keys(" a-key , b-key \n\n#c\n") == ["a-key", "b-key"]
    assert presented_key({"x-api-key": "k1"}) == "k1"
    assert presented_key({"x-api-key": " k1 \t"}) == "k1"  # as the Bearer form: surrounding whitespace ignored
    assert presented_key({"x-api-key": "  ", "authorization": "Bearer k3"}) == "k3"
    assert presented_key({"authorization": "Bearer  k2 "}) == "k2"
    assert presented_key({"authorization": "Basic abc"}) is None
    assert presented_key({}) is None
