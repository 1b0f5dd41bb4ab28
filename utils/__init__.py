"""Small helpers shared by the entry points: logging, meters, metrics, checkpoints, schedules."""
