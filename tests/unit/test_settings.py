"""Settings that must not reach production: default or weak secrets, open CORS,
malformed rate limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.settings import DEV_JWT_SECRET, Settings

PRIVATE_SECRET = "k" * 48


@pytest.mark.parametrize(
    "secret",
    [DEV_JWT_SECRET, "", "   ", "too-short-secret"],
    ids=["default", "empty", "blank", "short"],
)
def test_production_refuses_a_weak_jwt_secret(secret):
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(app_env="production", jwt_secret=secret)


def test_production_accepts_a_long_private_secret():
    settings = Settings(app_env="production", jwt_secret=PRIVATE_SECRET)

    assert settings.jwt_secret == PRIVATE_SECRET


@pytest.mark.parametrize("app_env", ["development", "test"])
def test_other_environments_run_with_the_development_secret(app_env):
    assert Settings(app_env=app_env, jwt_secret=DEV_JWT_SECRET).app_env == app_env


def test_cors_allows_no_other_origin_by_default():
    settings = Settings(cors_allowed_origins="")

    assert settings.cors_origins == []
    assert Settings.model_fields["cors_allowed_origins"].default == ""


def test_cors_origins_are_a_comma_separated_list():
    settings = Settings(cors_allowed_origins="https://a.example, https://b.example")

    assert settings.cors_origins == ["https://a.example", "https://b.example"]


@pytest.mark.parametrize("field", ["login_rate_limit", "register_rate_limit", "message_rate_limit"])
def test_rate_limits_have_defaults(field):
    assert Settings.model_fields[field].default


def test_a_malformed_rate_limit_is_refused():
    with pytest.raises(ValidationError, match="not a rate limit"):
        Settings(login_rate_limit="lots")


def test_an_empty_rate_limit_means_no_limit():
    assert Settings(message_rate_limit="").message_rate_limit == ""
