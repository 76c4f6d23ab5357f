"""The auth settings under [plugin_config.ui]: trusted_proxies in its written forms."""

from __future__ import annotations

import ipaddress

import pytest

from vq_core.config import Settings
from vq_ui.auth.access import AuthConfig


def config(**ui: object) -> AuthConfig:
    return AuthConfig.from_settings(Settings(plugin_config={"ui": ui}))


def test_no_proxy_is_trusted_by_default() -> None:
    assert config().trusted_proxies == []


@pytest.mark.parametrize(
    "written",
    [
        ["127.0.0.1", "127.0.0.0/8", "::1"],
        '["127.0.0.1", "127.0.0.0/8", "::1"]',  # JSON, as VQ_PLUGIN_CONFIG__UI__... gives it
        "127.0.0.1, 127.0.0.0/8,::1",  # or separated by commas
    ],
)
def test_trusted_proxies_take_addresses_and_networks(written: object) -> None:
    assert config(trusted_proxies=written).trusted_proxies == [
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    ]


def test_trusted_proxies_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VQ_PLUGIN_CONFIG__UI__TRUSTED_PROXIES", '["127.0.0.1"]')
    monkeypatch.setenv("VQ_CONFIG", "/nonexistent/vq.toml")
    found = AuthConfig.from_settings(Settings()).trusted_proxies
    assert found == [ipaddress.ip_network("127.0.0.1/32")]


@pytest.mark.parametrize("bad", ["*", "not-an-address", "127.0.0.1/8", '["127.0.0.1"', ["::g"]])
def test_a_bad_trusted_proxy_is_named(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^plugin_config\.ui: trusted_proxies"):
        config(trusted_proxies=bad)


def test_vq_run_stops_on_a_bad_auth_setting_before_it_listens() -> None:
    from vq_core.config import ConfigError
    from vq_ui.server import WebServer

    bad = Settings(port=0, plugin_config={"ui": {"trusted_proxies": ["127.0.0.1/8"]}})
    with pytest.raises(ConfigError, match=r"^invalid configuration: plugin_config\.ui: trusted"):
        WebServer(bad, None)  # type: ignore[arg-type]  # never reaches the store
