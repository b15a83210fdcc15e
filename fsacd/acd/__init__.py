"""The call handling: controller, matcher, recovery, presence, call flow, callbacks."""
