"""The supervised group from outside: start/stop, health, and the control-socket client."""
