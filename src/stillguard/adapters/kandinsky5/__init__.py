"""The Kandinsky 5 family: the ``kandinsky5-i2v`` adapter (story to be completed)."""

from .adapter import SAMPLE_MODES, Kandinsky5I2V

__all__ = ["SAMPLE_MODES", "Kandinsky5I2V"]
