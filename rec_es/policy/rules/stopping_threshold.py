"""Stopping threshold (Lightning): stop as soon as the monitor is strictly better than it — good enough."""
from __future__ import annotations

from rec_es.policy.compare import better_than
from rec_es.policy.rules._threshold import Threshold

RULE = Threshold("stopping_threshold", better_than, "better than", " (good enough)",
                 "stop as soon as the monitor is better than this (good enough)",
                 "better")
