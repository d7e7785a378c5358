"""Engines that run workflows: `local` runs them in this process, journaled so a killed run can be resumed."""

__all__: list[str] = []
