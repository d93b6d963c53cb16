"""
The baseline: a chat consumer written the way the Channels tutorial writes
one, for the benchmark to compare the product against in the same run.
"""
