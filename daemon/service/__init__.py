"""The process: the loop, systemd, health, pacing, housekeeping, the subscription."""
