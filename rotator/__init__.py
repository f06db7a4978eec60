"""rotator: rotate third-party credentials on a quarterly schedule and in emergencies.

The public surface is small on purpose (a test pins `__all__`): the `Secret` type and the
error tree. Everything else is reached through the `rotate` command or its modules.
"""

from rotator.errors import RotatorError
from rotator.secret import Secret

__version__ = "0.1.0"

__all__ = ["RotatorError", "Secret", "__version__"]
