"""kseries: verify a Linux kernel patch series against real trees, compilers and VMs."""

__version__ = "0.1.0"
