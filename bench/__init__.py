"""
The benchmark: the product, a Channels-tutorial baseline and a bare-websockets
ceiling, side by side in one run. ``python -m bench`` (full) or
``python -m bench --quick``.
"""
