"""Divergence threshold (Lightning): stop as soon as the monitor is strictly worse than it — hopeless."""
from __future__ import annotations

from rec_es.policy.compare import worse_than
from rec_es.policy.rules._threshold import Threshold

RULE = Threshold("divergence_threshold", worse_than, "worse than", "",
                 "stop as soon as the monitor is worse than this (hopeless)",
                 "worse")
