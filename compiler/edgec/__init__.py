"""edgec: an ahead-of-time deployment compiler for phones and microcontrollers."""
__version__ = "0.1.0"
