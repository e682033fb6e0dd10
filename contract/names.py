"""Identifier rules every side shares. Standard library only.

A model group's **slug** names its inference-log table (``inference_log_<slug>``) and its pages;
the warehouse's ``model_groups.slug`` CHECK constraint (migration 0001) holds the same pattern,
and a test keeps the two equal. The slug is made from the group's name by
``vigil.groups.records.slugify``; everything that splices a slug into SQL or a path checks it
with :func:`is_group_slug` first.
"""

from __future__ import annotations

import re

GROUP_SLUG_MAX = 40
GROUP_SLUG_PATTERN = rf"^[a-z0-9_]{{1,{GROUP_SLUG_MAX}}}$"
_GROUP_SLUG = re.compile(GROUP_SLUG_PATTERN)


def is_group_slug(value: object) -> bool:
    """Whether ``value`` is a valid group slug (``[a-z0-9_]``, 1 to 40 characters)."""
    return isinstance(value, str) and _GROUP_SLUG.fullmatch(value) is not None
