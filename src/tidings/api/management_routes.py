"""Every management API operation, in the order the OpenAPI document lists them."""

from __future__ import annotations

from tidings.api import (
    management_accounts,
    management_compliance,
    management_platform,
    management_review,
)
from tidings.api.management import Op


def all_ops() -> list[Op]:
    return [
        *management_accounts.OPS,
        *management_compliance.OPS,
        *management_platform.OPS,
        *management_review.OPS,
    ]
