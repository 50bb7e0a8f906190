"""Capture process: ring records in, HDF5 tick captures out (the format is ``procs.tickstore``)."""
