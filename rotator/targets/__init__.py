"""Put secret values where an environment reads them: Cloudflare Workers, Pages, dotenv."""

from rotator.targets.base import Target, get_target, load_targets

__all__ = ["Target", "get_target", "load_targets"]
