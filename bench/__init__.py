"""
The benchmark: the product and a Channels-tutorial baseline, side by side in
one run. ``python -m bench`` (full) or ``python -m bench --quick``.
"""
